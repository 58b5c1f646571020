"""`NetnsLab`: a private network of hosts on this machine, for partition tests (root only).

Each host is a network namespace of its own (``rmst-<6 hex>-<i>``, unique per lab, so parallel
runs never clash) with loopback up and one veth interface, ``eth0``, addressed 198.18.0.<i>/24
(RFC 2544 benchmarking space, routed nowhere). The peer end of every veth joins a bridge that
lives in one more namespace of the lab's own (``rmst-<6 hex>-br``): the root namespace gets no
interface, no address, no route and no firewall rule, so traffic only ever flows over loopback
and the lab's own namespaces. A command runs on a host through `Host.argv` (``ip netns exec``,
which execs in place: the PID a test starts is the PID of its command).

`cut_off` partitions a host from every other: an nftables table inside the host's namespace
drops all input and output except on loopback (packets vanish, as on a pulled cable: connects
time out, they are not refused). `heal` deletes that table. `close` deletes every namespace the
lab made, bridge and veths with them, whatever state a failed test left; it is idempotent and
kills no process (one still running in a deleted namespace keeps it alive, unnamed, until it
exits: stop your processes first).

`available()` says whether a lab can be built here, or why not, for an honest `pytest.skip`.

Not here: delaying or black-holing one connection on loopback (`tests.support.delay_proxy`),
resetting connections (`tests.support.tcp_proxy.TcpProxy`).
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

__all__ = ["Host", "NetnsError", "NetnsLab", "available", "namespaces"]

SUBNET = "198.18.0"
PREFIX_LENGTH = 24
MAX_HOSTS = 250
CUT_TABLE = "rmst_cut"
"""The nftables table (family ``inet``) `cut_off` adds inside a host's namespace."""
COMMAND_TIMEOUT = 10.0
"""Seconds any one ``ip`` or ``nft`` call may take."""

_CUT_RULESET = f"""\
table inet {CUT_TABLE} {{
    chain input {{
        type filter hook input priority -300; policy drop;
        iif "lo" accept
    }}
    chain output {{
        type filter hook output priority -300; policy drop;
        oif "lo" accept
    }}
}}
"""


class NetnsError(RuntimeError):
    """An ``ip`` or ``nft`` command failed; the message holds the command and its stderr."""


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    try:
        result = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NetnsError(f"{' '.join(argv)}: {error}") from error
    if result.returncode != 0:
        raise NetnsError(
            f"{' '.join(argv)} exited with {result.returncode}: {result.stderr.strip()}"
        )
    return result.stdout


def namespaces() -> list[str]:
    """The names of every named network namespace on this machine (``ip netns list``)."""
    return [line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines() if line.strip()]


@functools.cache
def available() -> str | None:
    """None if a `NetnsLab` can be built here, else why not (for ``pytest.skip``).

    Checked, in order: root, the ``ip`` and ``nft`` commands, and then the real thing: a
    namespace with a bridge and a veth pair in it, and an nftables table inside it.
    """
    if os.geteuid() != 0:
        return f"network namespaces need root (euid is {os.geteuid()})"
    for command, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(command) is None:
            return f"no `{command}` command (Debian package {package})"
    probe = f"rmst-{secrets.token_hex(3)}-probe"
    try:
        _run(["ip", "netns", "add", probe])
        try:
            _run(["ip", "-n", probe, "link", "add", "br0", "type", "bridge"])
            _run(["ip", "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
            _run(["ip", "-n", probe, "link", "set", "v1", "master", "br0"])
            _run(["ip", "netns", "exec", probe, "nft", "-f", "-"], stdin=_CUT_RULESET)
        finally:
            _run(["ip", "netns", "delete", probe])
    except NetnsError as error:
        return f"cannot build a network namespace lab here: {error}"
    return None


@dataclass(frozen=True)
class Host:
    """One host of a lab: namespace `name`, reachable from the others at `address`."""

    name: str
    address: str
    number: int
    """1-based: `address` is 198.18.0.<number>."""

    def argv(self, command: Sequence[str]) -> list[str]:
        """`command` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    def run(
        self, command: Sequence[str], timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` in this host's namespace and wait (at most `timeout` seconds); its
        output is captured as text, and a non-zero exit is the caller's to judge."""
        return subprocess.run(
            self.argv(command), capture_output=True, text=True, timeout=timeout, check=False
        )


class NetnsLab:
    """`size` hosts on one private bridge; build with `start` or ``with``, undo with `close`."""

    def __init__(self, size: int = 3) -> None:
        if not 1 <= size <= MAX_HOSTS:
            raise ValueError(f"size {size} is not a host count in 1..{MAX_HOSTS}")
        self.prefix = f"rmst-{secrets.token_hex(3)}"
        self.bridge_namespace = f"{self.prefix}-br"
        self.hosts = [Host(f"{self.prefix}-{n}", f"{SUBNET}.{n}", n) for n in range(1, size + 1)]
        self._made: list[str] = []  # namespaces created and not yet deleted, in order
        self._cut: set[int] = set()

    def __repr__(self) -> str:
        state = "up" if self._made else "down"
        cut = ",".join(str(n) for n in sorted(self._cut)) or "none"
        return f"<NetnsLab {self.prefix} hosts={len(self.hosts)} {state} cut={cut}>"

    def host(self, number: int) -> Host:
        """Host `number` (1-based, as in its address)."""
        return self.hosts[number - 1]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> NetnsLab:
        """Create the bridge namespace and every host; on any failure, delete what was made."""
        try:
            self._add_namespace(self.bridge_namespace)
            _run(["ip", "-n", self.bridge_namespace, "link", "add", "br0", "type", "bridge"])
            _run(["ip", "-n", self.bridge_namespace, "link", "set", "br0", "up"])
            for host in self.hosts:
                self._add_host(host)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Delete every namespace this lab made (hosts first, then the bridge's); safe to call
        again, and after a half-built `start`. Raises only after trying them all."""
        errors: list[str] = []
        present = set(namespaces()) if self._made else set()
        for name in reversed(list(self._made)):
            if name in present:
                try:
                    _run(["ip", "netns", "delete", name])
                except NetnsError as error:
                    errors.append(str(error))
                    continue
            self._made.remove(name)
        self._cut.clear()
        if errors:
            raise NetnsError("; ".join(errors))

    def __enter__(self) -> NetnsLab:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- partitions --------------------------------------------------------------------------

    def cut_off(self, host: Host) -> None:
        """Drop every packet `host` sends or receives except on loopback, from now on."""
        self._check(host)
        if host.number not in self._cut:
            _run(host.argv(["nft", "-f", "-"]), stdin=_CUT_RULESET)
            self._cut.add(host.number)

    def heal(self, host: Host) -> None:
        """Undo `cut_off`: delete the host's drop table (nothing to do if it is not cut off)."""
        self._check(host)
        if host.number in self._cut:
            _run(host.argv(["nft", "delete", "table", "inet", CUT_TABLE]))
            self._cut.discard(host.number)

    def is_cut_off(self, host: Host) -> bool:
        return host.number in self._cut

    # -- building ----------------------------------------------------------------------------

    def _check(self, host: Host) -> None:
        if host not in self.hosts or host.name not in self._made:
            raise ValueError(f"{host!r} is not a running host of {self!r}")

    def _add_namespace(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self._made.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])

    def _add_host(self, host: Host) -> None:
        self._add_namespace(host.name)
        port = f"h{host.number}"  # the bridge end: names are per namespace, 15 bytes at most
        bridge = self.bridge_namespace
        veth = ["type", "veth", "peer", "name", port, "netns", bridge]
        _run(["ip", "-n", host.name, "link", "add", "eth0", *veth])
        _run(["ip", "-n", bridge, "link", "set", port, "master", "br0"])
        _run(["ip", "-n", bridge, "link", "set", port, "up"])
        address = f"{host.address}/{PREFIX_LENGTH}"
        _run(["ip", "-n", host.name, "address", "add", address, "dev", "eth0"])
        _run(["ip", "-n", host.name, "link", "set", "eth0", "up"])
