"""Names in the cluster's keys: node names as long as a Kubernetes node's, other names 63, and
the abbreviation that fits a long name into a field of less room."""

from __future__ import annotations

import hashlib

import pytest

from nodemanager.keys import ClusterKeys, abbreviated, check_name, check_node_name
from ramster.errors import InvalidArgument

NODE_RULE = "expected 1-253 letters, digits, '.', '_' or '-', starting alnum"
NAME_RULE = "expected 1-63 letters, digits, '.', '_' or '-', starting alnum"


@pytest.mark.parametrize("name", ["n", "a" * 253, "ip-10-0-0-1.ec2.internal", "w_1.x-2"])
def test_a_node_name_has_up_to_253_characters(name: str) -> None:
    assert check_node_name("name", name) == name
    assert ClusterKeys("c").name(name) == f"/ramster/c/names/{name}"


@pytest.mark.parametrize("name", ["", "a" * 254, "-a", ".a", "a b", "a/b", "ä"])
def test_a_node_name_outside_the_rule_is_refused(name: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_node_name("name", name)
    shown = repr(name) if len(name) <= 64 else f"{name[:64]!r}... ({len(name)} characters)"
    assert refused.value.message == f"name {shown} is invalid: {NODE_RULE}"


def test_other_names_keep_63_characters() -> None:
    assert check_name("cluster", "c" * 63) == "c" * 63
    with pytest.raises(InvalidArgument) as refused:
        check_name("cluster", "c" * 64)
    assert refused.value.message == f"cluster {'c' * 64!r} is invalid: {NAME_RULE}"


def test_a_name_that_fits_is_not_abbreviated() -> None:
    assert abbreviated("n" * 64, 64) == "n" * 64


def test_a_longer_name_is_cut_and_ends_with_its_digest() -> None:
    name = "w" * 100
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    assert abbreviated(name, 64) == "w" * 47 + "~" + digest
    assert len(abbreviated(name, 63)) == 63
    # Alike in all that is kept: still told apart, and never a name itself ('~').
    assert abbreviated(name + "1", 64) != abbreviated(name + "2", 64)
    with pytest.raises(InvalidArgument):
        check_node_name("name", abbreviated(name, 64))
