"""Per-identity quotas, the Xen tmem analog of per-guest caps: what the pages of each owner scope
take on this node, and how much they may.

An `Account` per owner scope (`ramster.tmem.keys.owner_scope`: the identity ``role:name`` a
node's client names start with) counts the pages of every pool of the scope on this node,
persistent and ephemeral, kept here or remotified, each at its pool's page size: the bytes the
clients handed over, not what compression made of them, so a quota does not depend on how well
a workload compresses nor on where its pages are. Each pool refers to its account and the page
table counts its pages there as it counts them in the pool (`Pool.count`); a put of a new key
that would take the account past its quota is refused (`RejectReason.QUOTA`,
`ramster.tmem.table.PageTable.put_pool_page`). Pools held for peers and the pools of clients in
process (no scope) have no account: they are never metered.

Not here: where the quotas come from (the `client_quota` param and ``ramster quota set``,
`ramster.backend`), the answers of ``ramster stats --clients`` (`ramster.rpc.admin_service`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

UNLIMITED = 0
"""A quota of 0 bytes: no limit."""

_NO_LIMIT = 1 << 63
"""What an account without a quota compares with: more than any node holds."""


@dataclass(frozen=True, slots=True)
class Quotas:
    """The quota of every identity: `default` (the `client_quota` param), or the one set for it
    in `by_identity` (``ramster quota set``); each in bytes, `UNLIMITED` for none."""

    default: int = UNLIMITED
    by_identity: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A copy nobody else holds: the value stays what it was made with.
        object.__setattr__(self, "by_identity", MappingProxyType(dict(self.by_identity)))

    def of(self, identity: str) -> int:
        """The quota `identity` is held to, in bytes (`UNLIMITED`: none)."""
        return self.by_identity.get(identity, self.default)

    def with_quota(self, identity: str, nbytes: int) -> Quotas:
        """A copy where `identity` is held to `nbytes` (`UNLIMITED`: to none, whatever the
        default)."""
        return replace(self, by_identity={**self.by_identity, identity: nbytes})

    def without(self, identity: str) -> Quotas:
        """A copy where `identity` is held to the default again."""
        rest = {name: n for name, n in self.by_identity.items() if name != identity}
        return replace(self, by_identity=rest)


@dataclass(frozen=True, slots=True)
class Usage:
    """What the pages of `identity` take on a node (``ramster stats --clients``): `pages`, their
    `nbytes` as handed over, the `quota` it is held to (`UNLIMITED`: none) and the puts the quota
    `refused` since its account opened (with its first pool on the node)."""

    identity: str
    pages: int
    nbytes: int
    quota: int
    refused: int


class Account:
    """The pages of one owner scope on this node: how many, the bytes they take as handed over,
    the quota they are held to, and how many puts the quota refused. `pools` counts the pools
    referring to it (`Accounts` lets go of an account with none)."""

    __slots__ = ("limit", "pages", "pools", "quota", "refused", "scope", "used")

    def __init__(self, scope: str, quota: int) -> None:
        self.scope = scope
        self.pages = 0
        self.used = 0
        self.refused = 0
        self.pools = 0
        self.quota = quota
        self.limit = quota or _NO_LIMIT
        """`quota`, or more than any node holds: the one comparison a put makes."""

    def __repr__(self) -> str:
        return (
            f"<Account {self.scope} pages={self.pages} used={self.used} quota={self.quota} "
            f"refused={self.refused}>"
        )

    def set_quota(self, quota: int) -> None:
        """Hold the account to `quota` bytes from now on; pages already stored stay, even past
        it (only new keys are refused)."""
        self.quota = quota
        self.limit = quota or _NO_LIMIT


class Accounts:
    """The accounts of one page table by owner scope, each held to its quota in the `Quotas`
    last given to `configure` (none until then)."""

    def __init__(self) -> None:
        self._quotas = Quotas()
        self._by_scope: dict[str, Account] = {}

    def __repr__(self) -> str:
        return f"<Accounts scopes={len(self._by_scope)} {self._quotas!r}>"

    def __iter__(self) -> Iterator[Account]:
        """The accounts, by scope."""
        return iter(sorted(self._by_scope.values(), key=lambda account: account.scope))

    def usage(self) -> list[Usage]:
        """What each account holds now, by scope."""
        return [Usage(a.scope, a.pages, a.used, a.quota, a.refused) for a in self]

    def configure(self, quotas: Quotas) -> None:
        """Hold every account, and those opened later, to `quotas`."""
        self._quotas = quotas
        for account in self._by_scope.values():
            account.set_quota(quotas.of(account.scope))

    def open(self, scope: str) -> Account:
        """The account of `scope` for one more pool referring to it."""
        account = self._by_scope.get(scope)
        if account is None:
            account = self._by_scope[scope] = Account(scope, self._quotas.of(scope))
        account.pools += 1
        return account

    def close(self, account: Account) -> None:
        """One pool less refers to `account`; it goes with the last one (with its pages)."""
        account.pools -= 1
        if not account.pools:
            del self._by_scope[account.scope]
