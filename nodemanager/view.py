"""A cluster's membership view rebuilt from etcd keys, one change at a time. Pure: no I/O.

`ClusterView` holds the live members (``nodes/<number>``), the nodes an operator forgot
(``forgotten/<number>``: a change of them is a change of "members"), the cluster-wide params
(``params/<name>``) and quotas (``quotas/<identity>``) and says, for each put or delete it
applies, what changed. The etcd backend
feeds it from a ``get_prefix`` and then from watch events; it never talks to etcd itself.

Not here: the key layout and entry JSON (`nodemanager.keys`), etcd (`nodemanager.etcd`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from nodemanager.keys import ClusterKeys, decode_member
from nodemanager.model import MemberInfo
from ramster.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class Change:
    """What one put or delete did to the view.

    changed: "members", "params", "quotas", or None when the view is as it was.
    problem: why a malformed entry was ignored (a malformed ``nodes/`` entry counts as absent).
    """

    changed: Literal["members", "params", "quotas"] | None
    problem: str | None = None


UNCHANGED = Change(None)


class ClusterView:
    """Live members by number, params by name and quotas by identity, as the keys under one
    cluster prefix say."""

    def __init__(self, keys: ClusterKeys) -> None:
        self.keys = keys
        self.members: dict[int, MemberInfo] = {}
        self.params: dict[str, str] = {}
        self.quotas: dict[str, str] = {}  # identity → its quota as text, checked by the node
        self.forgotten: dict[int, str] = {}  # number → name

    def __repr__(self) -> str:
        numbers = ",".join(map(str, sorted(self.members)))
        return f"<ClusterView {self.keys.cluster!r} members=[{numbers}] params={len(self.params)}>"

    def apply(self, key: str, value: bytes | None) -> Change:
        """Apply a put (`value` is the new value) or a delete (`value` is None) of `key`."""
        kind = self.keys.classify(key)
        if kind is None or kind[0] in ("names", "next_number"):
            return UNCHANGED
        folder, leaf = kind
        if folder == "params":
            return self._apply_setting(self.params, "params", leaf, value)
        if folder == "quotas":
            return self._apply_setting(self.quotas, "quotas", leaf, value)
        if folder == "forgotten":
            return self._apply_forgotten(int(leaf), value)
        return self._apply_node(int(leaf), value)

    def load(self, entries: Iterable[tuple[str, bytes]]) -> list[str]:
        """Replace the whole view with what `entries` (every key and value under the prefix)
        say; return the problems of the malformed entries that were ignored."""
        self.members, self.params, self.quotas, self.forgotten = {}, {}, {}, {}
        return [c.problem for key, value in entries if (c := self.apply(key, value)).problem]

    def _apply_node(self, number: int, value: bytes | None) -> Change:
        old = self.members.get(number)
        if value is None:
            return Change("members") if self.members.pop(number, None) is not None else UNCHANGED
        try:
            new = decode_member(value, number)
        except InvalidArgument as error:
            self.members.pop(number, None)
            return Change("members" if old is not None else None, error.message)
        if new == old:
            return UNCHANGED
        self.members[number] = new
        return Change("members")

    @staticmethod
    def _apply_setting(
        settings: dict[str, str],
        kind: Literal["params", "quotas"],
        name: str,
        value: bytes | None,
    ) -> Change:
        """A put or delete of cluster-wide param or quota `name` in `settings`."""
        if value is None:
            return Change(kind) if settings.pop(name, None) is not None else UNCHANGED
        text = value.decode("utf-8", errors="replace")
        if settings.get(name) == text:
            return UNCHANGED
        settings[name] = text
        return Change(kind)

    def _apply_forgotten(self, number: int, value: bytes | None) -> Change:
        if value is None:
            return Change("members") if self.forgotten.pop(number, None) is not None else UNCHANGED
        name = value.decode("utf-8", errors="replace")
        if self.forgotten.get(number) == name:
            return UNCHANGED
        self.forgotten[number] = name
        return Change("members")
