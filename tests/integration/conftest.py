"""Real `ramster node` processes for integration tests.

Each test owns its nodes: they start in the test's tmp_path on free ports, are waited for through
their ready file, and are stopped by PID at teardown (SIGTERM, then SIGKILL). A node's output goes
to a log file next to it; when a test fails, every log of its nodes is added to the report.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.etcd import EtcdProcess
from tests.support.nodes import start_node
from tests.support.processes import ManagedProcess

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0

NODES = pytest.StashKey[list["NodeProcess"]]()
ETCDS = pytest.StashKey[list[EtcdProcess]]()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """The first truthy value of `predicate`, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


class NodeProcess:
    """One `ramster node`: `start` waits until it serves (`tests.support.nodes.start_node`);
    `stop` (SIGTERM) and `kill` (SIGKILL) end it by PID; `start` again restarts it with the same
    options, on the same port if `listen` names one. `extra_flags` are further `ramster node`
    flags (``--metrics``, ``--grace``)."""

    def __init__(
        self,
        directory: Path,
        name: str,
        listen: str = "127.0.0.1:0",
        memory: str = "64MiB",
        zcache: bool = True,
        extra_flags: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.name = name
        self.listen = listen
        self.flags = ("--memory", memory, "--zcache", "on" if zcache else "off", *extra_flags)
        self.log_path = directory / f"{name}.log"
        self.process: ManagedProcess | None = None
        self.ready: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<NodeProcess {self.name} {self.process!r} {self.ready.get('address')}>"

    @property
    def address(self) -> str:
        return str(self.ready["address"])

    @property
    def epoch(self) -> str:
        return str(self.ready["epoch"])

    def start(self) -> NodeProcess:
        self.process, self.ready = start_node(
            self.directory, self.name, *self.flags, listen=self.listen, timeout=READY_TIMEOUT
        )
        return self

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after `STOP_TIMEOUT`; the exit status (None if never started)."""
        if self.process is not None:
            return self.process.stop(STOP_TIMEOUT)
        return None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class TcpProxy:
    """Forwards a loopback port to `port`; `cut` resets every open connection, as a network blip
    would, while new ones are still accepted and the node behind keeps running."""

    def __init__(self, port: int) -> None:
        self._upstream = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
                upstream = socket.create_connection(self._upstream)
            except OSError:
                return
            with self._lock:
                self._sockets += [downstream, upstream]
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)


class NodeFactory:
    """Starts nodes for one test and stops every one of them at its end."""

    def __init__(self, directory: Path, nodes: list[NodeProcess]) -> None:
        self.directory = directory
        self.nodes = nodes

    def start(self, name: str, **options: Any) -> NodeProcess:
        """A running node; `NodeProcess` takes the options. To restart one on the same port,
        give it ``listen=f"127.0.0.1:{free_port()}"``, then `kill` or `stop` and `start` it."""
        node = NodeProcess(self.directory, name, **options)
        self.nodes.append(node)
        return node.start()

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture
def node_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[NodeFactory]:
    nodes = request.node.stash.setdefault(NODES, [])
    factory = NodeFactory(tmp_path, nodes)
    yield factory
    factory.stop_all()


@pytest.fixture
def node(node_factory: NodeFactory) -> NodeProcess:
    return node_factory.start("node1")


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    """One etcd shared by a module's tests: use it through `etcd_cluster`, never stop it."""
    process = EtcdProcess(tmp_path_factory.mktemp("etcd")).start()
    yield process
    process.stop()


@pytest.fixture
def etcd_cluster(etcd: EtcdProcess, request: pytest.FixtureRequest) -> Iterator[str]:
    """A cluster name no other test uses, in the module's `etcd`; its keys are wiped after."""
    request.node.stash.setdefault(ETCDS, []).append(etcd)
    cluster = f"test-{uuid.uuid4().hex[:12]}"
    yield cluster
    etcd.ctl("del", "--prefix", f"/ramster/{cluster}/")


@pytest.fixture
def private_etcd(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EtcdProcess]:
    """An etcd of the test's own, for tests that kill or restart it; stopped after."""
    process = EtcdProcess(tmp_path / "etcd")
    process.directory.mkdir()
    request.node.stash.setdefault(ETCDS, []).append(process)
    yield process.start()
    process.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        restarts_share_a_log = {node.log_path: node for node in item.stash.get(NODES, [])}
        for node in restarts_share_a_log.values():
            report.sections.append((f"ramster node {node.name}: {node.log_path}", node.log()))
        for etcd in item.stash.get(ETCDS, []):
            report.sections.append((f"etcd {etcd.url}: {etcd.log_path}", etcd.log()))
    return report
