"""etcd over TLS with authentication, on a real etcd: the local cluster's etcd (`LocalCluster`,
what ``ramster up`` and ``ramster demo`` run) takes only client certificates of the cluster CA
whose CN is an etcd user with the cluster's role, and that role reaches the cluster's prefix
only; a user and password work too. Refusals are checked as the ``ramster`` command prints them."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest

from ramster.client import SyncClient
from ramster.launcher import LocalCluster
from ramster.trust import files
from ramster.trust.identity import Identity, Role
from tests.support.cluster import MiB
from tests.support.etcd import EtcdProcess
from tests.support.nodes import NodeFactory, run_cli, table_rows
from tests.support.processes import wait_for

DENIED = "PERMISSION_DENIED etcdserver: permission denied"


def etcd_flags(cluster: LocalCluster, name: str) -> tuple[str, ...]:
    """The ``--etcd*`` flags of the certificate issued to `name`."""
    tls = cluster.tls_of(name)
    return (
        "--etcd", cluster.etcd_url, "--etcd-ca", str(tls.ca),
        "--etcd-cert", str(tls.cert), "--etcd-key", str(tls.key),
    )  # fmt: skip


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> LocalCluster:
    """A local cluster of one node, and two more certificates of its CA: ``stranger`` names no
    etcd user, ``roleless`` an etcd user without a role."""
    with LocalCluster(1, [64 * MiB], directory=tmp_path_factory.mktemp("local")) as cluster:
        now = datetime.datetime.now(datetime.UTC)
        for name in ("stranger", "roleless"):
            files.issue(cluster.tls_dir, Identity(Role.NODE, name), now=now)
        cluster.etcdctl("user", "add", "roleless", "--no-password")
        yield cluster


def test_a_node_with_its_certificate_registers_and_the_admin_reads_and_writes(
    local: LocalCluster,
) -> None:
    members = run_cli("members", *etcd_flags(local, "admin"), "--cluster", "local")
    assert members.returncode == 0, members.stderr
    assert [row[:2] for row in table_rows(members.stdout)] == [["1", "node1"]]
    written = run_cli(
        "param", "set", "eph_remotify", "off", "--cluster", "local", *etcd_flags(local, "admin")
    )
    assert (written.returncode, written.stderr) == (0, "")
    assert local.etcdctl("get", "/ramster/local/params/eph_remotify", "--print-value-only") == (
        "off\n"
    )


def test_etcd_refuses_a_caller_without_a_certificate(local: LocalCluster) -> None:
    ca = str(local.tls_of("admin").ca)
    without = run_cli("param", "set", "zcache", "off", "--cluster", "local",
                      "--etcd", local.etcd_url, "--etcd-ca", ca)  # fmt: skip
    plaintext_url = local.etcd_url.replace("https://", "http://")
    plaintext = run_cli(
        "param", "set", "zcache", "off", "--cluster", "local", "--etcd", plaintext_url
    )
    doing = "(writing /ramster/local/params/zcache)"
    # gRPC's core would log the failed handshake on stderr too, whenever: the command quiets it
    assert (without.returncode, without.stderr) == (
        1,
        f"ramster param: etcd at {local.etcd_url} is unreachable {doing}\n",
    )
    assert (plaintext.returncode, plaintext.stderr) == (
        1,
        f"ramster param: etcd at {plaintext_url} is unreachable {doing}\n",
    )
    assert local.etcdctl("get", "/ramster/local/params/zcache") == ""


@pytest.mark.parametrize("name", ["stranger", "roleless"])
def test_etcd_refuses_a_certificate_whose_user_has_no_role_on_the_prefix(
    local: LocalCluster, name: str
) -> None:
    members = run_cli("members", *etcd_flags(local, name), "--cluster", "local")
    assert (members.returncode, members.stderr) == (
        1,
        f"ramster members: etcd at {local.etcd_url} refused reading /ramster/local/: {DENIED}\n",
    )
    written = run_cli(
        "param", "set", "zcache", "off", "--cluster", "local", *etcd_flags(local, name)
    )
    assert (written.returncode, written.stderr) == (
        1,
        f"ramster param: etcd at {local.etcd_url} refused writing "
        f"/ramster/local/params/zcache: {DENIED}\n",
    )
    tls = local.tls_of(name)
    node = run_cli(
        "node", "--name", name, "--cluster", "local", "--memory", "16MiB",
        "--listen", "127.0.0.1:0", *etcd_flags(local, name),
        "--tls-ca", tls.ca, "--tls-cert", tls.cert, "--tls-key", tls.key,
    )  # fmt: skip
    assert node.returncode == 1
    assert node.stderr.endswith(f": {DENIED}\n"), node.stderr


ROOT = "--user=root:root-secret"


@pytest.fixture
def etcd_with_users(tmp_path: Path) -> Iterator[EtcdProcess]:
    """A plain-http etcd of its own with authentication on: user app (password app-secret) may
    read and write /ramster/c1/ only; root is root:root-secret."""
    etcd = EtcdProcess(tmp_path, "etcd-auth").start()
    try:
        for command in (
            ["user", "add", "root:root-secret"],
            ["user", "grant-role", "root", "root"],
            ["role", "add", "ramster-c1"],
            ["role", "grant-permission", "ramster-c1", "readwrite", "/ramster/c1/", "--prefix"],
            ["user", "add", "app:app-secret"],
            ["user", "grant-role", "app", "ramster-c1"],
            ["auth", "enable"],
        ):
            etcd.ctl(*command, *([ROOT] if command[0] == "auth" else []))
        yield etcd
    finally:
        etcd.stop()


def test_a_user_and_password_reach_their_prefix_only(etcd_with_users: EtcdProcess) -> None:
    etcd, root = etcd_with_users, ROOT
    user = ("--etcd", etcd.url, "--etcd-user", "app", "--etcd-password", "app-secret")
    mine = run_cli("param", "set", "zcache", "off", "--cluster", "c1", *user)
    theirs = run_cli("param", "set", "zcache", "off", "--cluster", "c2", *user)
    anonymous = run_cli("param", "set", "zcache", "off", "--cluster", "c1", "--etcd", etcd.url)
    wrong = run_cli("members", "--cluster", "c1", *user[:-1], "guessed")
    assert (mine.returncode, mine.stderr) == (0, "")
    assert (theirs.returncode, theirs.stderr) == (
        1,
        f"ramster param: etcd at {etcd.url} refused writing /ramster/c2/params/zcache: {DENIED}\n",
    )
    assert (anonymous.returncode, anonymous.stderr) == (
        1,
        f"ramster param: etcd at {etcd.url} refused writing /ramster/c1/params/zcache: "
        "INVALID_ARGUMENT etcdserver: user name is empty\n",
    )
    assert (wrong.returncode, wrong.stderr) == (
        1,
        f"ramster members: etcd at {etcd.url} refused authenticating as 'app': "
        "INVALID_ARGUMENT etcdserver: authentication failed, invalid user ID or password\n",
    )
    assert etcd.ctl("get", "--prefix", "/ramster/", "--print-value-only", root) == "off\n"


def test_a_node_asks_for_a_new_token_when_a_restarted_etcd_forgot_its_own(
    etcd_with_users: EtcdProcess, node_factory: NodeFactory
) -> None:
    etcd = etcd_with_users
    user = ("--etcd", etcd.url, "--etcd-user", "app", "--etcd-password", "app-secret")
    node = node_factory.start("n1", extra_flags=(*user, "--cluster", "c1"))
    etcd.restart()  # etcd keeps its simple tokens in memory: the node's is gone
    written = run_cli("param", "set", "eph_remotify", "off", "--cluster", "c1", *user)
    assert (written.returncode, written.stderr) == (0, "")
    with SyncClient(node.address, client_name="test") as client:
        wait_for(lambda: client.params()["eph_remotify"] == "off", 20, "the node to apply it")
    members = run_cli("members", "--cluster", "c1", *user)
    assert [row[:2] for row in table_rows(members.stdout)] == [["1", "n1"]]
