"""The rules of who may call what (`ramster.rpc.access.Rules`): per service and role on a node
with TLS; every caller, as the local identity, on a node without."""

from __future__ import annotations

import pytest

from ramster.errors import PermissionDenied
from ramster.rpc.access import Rule, Rules
from ramster.trust.identity import LOCAL, Identity, Role

NODE = Identity(Role.NODE, "n2")
CLIENT = Identity(Role.CLIENT, "app")
ADMIN = Identity(Role.ADMIN, "ops")
CALLS = {"tmem": "PutPages", "admin read": "GetStats", "admin change": "SetParam", "peer": "Hello"}


def allowed(rules: Rules, identity: Identity) -> list[str]:
    """The calls of `CALLS` `rules` let `identity` make."""
    rule_of: dict[str, Rule] = {
        "tmem": rules.tmem,
        "admin read": rules.admin,
        "admin change": rules.admin,
        "peer": rules.peer,
    }
    calls = []
    for call, method in CALLS.items():
        try:
            rule_of[call](method, identity)
        except PermissionDenied:
            continue
        calls.append(call)
    return calls


def test_with_tls_each_role_reaches_what_it_is_for() -> None:
    rules = Rules.of_node(proven=True)
    assert {repr(i): allowed(rules, i) for i in (NODE, CLIENT, ADMIN, LOCAL)} == {
        "<Identity node 'n2'>": ["admin read", "peer"],
        "<Identity client 'app'>": ["tmem", "admin read"],
        "<Identity admin 'ops'>": ["tmem", "admin read", "admin change"],
        "<Identity local 'local'>": ["tmem", "admin read"],
    }
    with pytest.raises(PermissionDenied) as refused:
        rules.admin("Drain", CLIENT)
    assert refused.value.message == (
        "Admin/Drain is for admin identities: the caller is <Identity client 'app'> (role client)"
    )


def test_without_tls_the_local_identity_reaches_everything() -> None:
    assert allowed(Rules.of_node(proven=False), LOCAL) == list(CALLS)
