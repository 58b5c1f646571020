"""The fixtures of the tests that run real processes (tests/integration, tests/fault): nodes,
a module's shared etcd with a cluster name per test, an etcd of the test's own.

Each test owns its nodes: they start in the test's tmp_path on free ports, are waited for through
their ready file, and are stopped by PID at teardown (SIGTERM, then SIGKILL). A node's output goes
to a log file next to it; when a test fails, every log of its nodes is added to the report.
The helpers behind them are modules of tests/support (`tests.support.nodes`); a conftest is not
imported from.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support.etcd import EtcdProcess
from tests.support.nodes import ETCDS, NODES, NodeFactory, NodeProcess


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
