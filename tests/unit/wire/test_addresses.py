"""How a node's advertised address is written: ``HOST:PORT``, or a host alone (a pod IP as the
downward API gives it, IPv6 unbracketed) that takes the port the node bound for peers."""

from __future__ import annotations

import pytest

from ramster.errors import InvalidArgument
from ramster.wire.limits import advertised, join_host_port, split_advertise

RULE = (
    "expected HOST:PORT ([IPV6]:PORT), or a host alone (an IP address, IPv6 bracketed or not, "
    "or a name) to be reached at the port the node listens on"
)


@pytest.mark.parametrize(
    ("text", "split"),
    [
        ("10.0.0.5:7470", ("10.0.0.5", 7470)),
        ("[fd00::5]:7470", ("fd00::5", 7470)),
        ("node-1.example:7470", ("node-1.example", 7470)),
        ("10.0.0.5", ("10.0.0.5", None)),
        ("fd00::5", ("fd00::5", None)),
        ("[fd00::5]", ("fd00::5", None)),
        ("FD00:0::5", ("fd00::5", None)),
        # No brackets: an IPv6 address, never one with a port (RFC 3986 brackets those).
        ("fd00::5:7470", ("fd00::5:7470", None)),
        ("node-1.example", ("node-1.example", None)),
    ],
)
def test_an_advertised_address_is_host_and_port_or_a_host_alone(
    text: str, split: tuple[str, int | None]
) -> None:
    assert split_advertise(text) == split


@pytest.mark.parametrize("text", ["", "a b", "h:", "h:x", "h:70000", "[fd00::5", "-h", "h/1:2"])
def test_an_advertised_address_that_is_neither_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        split_advertise(text)
    assert refused.value.message == f"advertise {text!r} is invalid: {RULE}"


@pytest.mark.parametrize(
    ("advertise", "reached", "address"),
    [
        ("fd00::5", "[::]:7471", "[fd00::5]:7471"),  # env POD_IP as Kubernetes gives it
        ("[fd00::5]", "0.0.0.0:7471", "[fd00::5]:7471"),
        ("10.0.0.5", "0.0.0.0:7471", "10.0.0.5:7471"),
        ("node-1.example", "0.0.0.0:7471", "node-1.example:7471"),
        ("[fd00::5]:9000", "0.0.0.0:7471", "[fd00::5]:9000"),
        ("10.0.0.5:9000", "0.0.0.0:7471", "10.0.0.5:9000"),
        (None, "127.0.0.1:7471", "127.0.0.1:7471"),
    ],
)
def test_a_host_alone_takes_the_port_peers_reach(
    advertise: str | None, reached: str, address: str
) -> None:
    assert advertised(advertise, reached) == address


def test_ipv6_is_bracketed_when_joined() -> None:
    assert (join_host_port("fd00::5", 1), join_host_port("10.0.0.5", 1)) == (
        "[fd00::5]:1",
        "10.0.0.5:1",
    )
