"""`NetnsLab` (`tests.support.netns`) with real traffic: hosts reach each other over the lab's
bridge, a cut-off host is unreachable (connects time out) while the others still talk, `heal`
restores it, and `close` leaves no namespace behind, after a half-built start too. The root
namespace gains no interface or address. Root only: skipped, with the reason, where a lab
cannot be built.

Not here: a RAMster cluster in a lab (`test_partition.py`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import Host, NetnsLab, available, namespaces
from tests.support.processes import ManagedProcess
from tests.support.tools import require

PORT = 8080  # a fresh namespace has every port free
CONNECT_TIMEOUT = 1.0
READY_TIMEOUT = 10.0

LISTENER = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
while True:
    connection, _ = server.accept()
    with connection:
        connection.sendall(sys.argv[3].encode())
"""

CONNECT = """
import socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.settimeout(timeout)
        print("ok", connection.recv(64).decode())
except OSError as error:
    print("failed", type(error).__name__, error)
    sys.exit(1)
"""


def connect(client: Host, server: Host) -> tuple[bool, str, float]:
    """From `client`, connect to `server`'s listener: (answered, what was printed, seconds)."""
    argv = [sys.executable, "-c", CONNECT, server.address, str(PORT), str(CONNECT_TIMEOUT)]
    started = time.monotonic()
    result = client.run(argv, timeout=CONNECT_TIMEOUT + 10)
    return (
        result.returncode == 0,
        (result.stdout + result.stderr).strip(),
        time.monotonic() - started,
    )


def wait_reachable(client: Host, server: Host) -> str:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        answered, output, _ = connect(client, server)
        if answered:
            return output
        if time.monotonic() > deadline:
            raise AssertionError(f"{server.name} not reachable from {client.name}: {output}")
        time.sleep(0.1)


def skip_without_lab() -> None:
    require(available())


def root_network() -> tuple[str, str]:
    """The root namespace's interfaces with their addresses, and its nftables ruleset."""

    def output(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout

    return output("ip", "-brief", "address"), output("nft", "list", "ruleset")


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    skip_without_lab()
    with NetnsLab(3) as running:
        yield running


@pytest.fixture
def listeners(lab: NetnsLab, tmp_path: Path) -> Iterator[dict[int, ManagedProcess]]:
    """A TCP listener on each host's address, answering ``host <n>``; stopped by PID after."""
    started: dict[int, ManagedProcess] = {}
    try:
        for host in lab.hosts:
            argv = [sys.executable, "-c", LISTENER, host.address, str(PORT), f"host {host.number}"]
            log = tmp_path / f"listener{host.number}.log"
            started[host.number] = ManagedProcess(f"listener {host.name}", host.argv(argv), log)
        yield started
    finally:
        for process in started.values():
            process.stop(5)


def test_hosts_reach_each_other_until_one_is_cut_off_and_again_after_heal(
    lab: NetnsLab, listeners: dict[int, ManagedProcess]
) -> None:
    one, two, three = lab.hosts
    assert [(h.name, h.address) for h in lab.hosts] == [
        (f"{lab.prefix}-{n}", f"198.18.0.{n}") for n in (1, 2, 3)
    ]
    assert wait_reachable(two, one) == "ok host 1"
    assert wait_reachable(one, three) == "ok host 3"
    assert wait_reachable(three, two) == "ok host 2"

    lab.cut_off(one)
    assert lab.is_cut_off(one)
    assert repr(lab) == f"<NetnsLab {lab.prefix} hosts=3 up cut=1>"
    for client, server in ((two, one), (three, one), (one, two)):
        answered, output, seconds = connect(client, server)
        assert not answered, f"{client.name} -> {server.name} while cut off: {output}"
        assert seconds < CONNECT_TIMEOUT + 3, f"{output} after {seconds:.1f} s"
    assert "TimeoutError" in connect(two, one)[1]  # dropped, not refused: as a pulled cable
    assert connect(two, three)[:2] == (True, "ok host 3")  # the others still talk
    assert listeners[1].proc.poll() is None  # the host runs on, it is only unreachable

    lab.heal(one)
    assert not lab.is_cut_off(one)
    assert connect(two, one)[:2] == (True, "ok host 1")
    assert connect(one, three)[:2] == (True, "ok host 3")
    lab.heal(one)  # healing a host that is not cut off changes nothing


def test_the_lab_leaves_the_root_namespace_alone_and_close_deletes_every_namespace() -> None:
    skip_without_lab()
    before = root_network()
    lab = NetnsLab(3)
    try:
        lab.start()
        made = [name for name in namespaces() if name.startswith(f"{lab.prefix}-")]
        assert sorted(made) == sorted([*(h.name for h in lab.hosts), f"{lab.prefix}-br"])
        lab.cut_off(lab.host(2))
        assert root_network() == before
        assert "198.18." not in before[0]
    finally:
        lab.close()
    assert [name for name in namespaces() if name.startswith(lab.prefix)] == []
    assert repr(lab) == f"<NetnsLab {lab.prefix} hosts=3 down cut=none>"
    lab.close()  # idempotent
    with pytest.raises(ValueError, match="is not a running host"):
        lab.cut_off(lab.host(1))


def test_a_lab_that_fails_half_built_deletes_what_it_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    skip_without_lab()
    lab = NetnsLab(3)
    add_host = lab._add_host

    def fail_on_the_third(host: Host) -> None:
        if host.number == 3:
            raise RuntimeError("host 3 failed")
        add_host(host)

    monkeypatch.setattr(lab, "_add_host", fail_on_the_third)
    with pytest.raises(RuntimeError, match="host 3 failed"):
        lab.start()
    assert [name for name in namespaces() if name.startswith(lab.prefix)] == []


def test_two_labs_side_by_side_do_not_clash(tmp_path: Path) -> None:
    skip_without_lab()
    with NetnsLab(2) as first, NetnsLab(2) as second:
        assert first.prefix != second.prefix
        assert [h.address for h in first.hosts] == [h.address for h in second.hosts]
        server = first.host(1)
        argv = [sys.executable, "-c", LISTENER, server.address, str(PORT), "first lab"]
        listener = ManagedProcess("listener", server.argv(argv), tmp_path / "listener.log")
        try:
            assert wait_reachable(first.host(2), server) == "ok first lab"
            # The same address in the other lab is another host, on another wire: refused.
            answered, output, _ = connect(second.host(2), second.host(1))
            assert not answered
            assert "ConnectionRefusedError" in output
        finally:
            listener.stop(5)
