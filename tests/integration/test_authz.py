"""Who may do what on a real node (issue 12): bearer tokens name a caller as certificates do,
pools belong to the identity that made them, and each service answers only the roles it is for.
The CA, certificates and tokens are made in a temporary folder with `ramster.trust.files`."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.rpc.error_details_pb2 import ErrorInfo

from nodemanager.cli import list_members
from ramster.api.v1 import peer_pb2
from ramster.client import TLS, Cleancache, Frontswap, RamsterError, SyncClient, Unauthenticated
from ramster.rpc.peer_link import PeerLink
from ramster.trust.files import init_ca, issue
from ramster.trust.identity import Identity, Role
from tests.support.cluster import Cluster, done_shipping, pages_of, read_back, store_all
from tests.support.etcd import EtcdProcess
from tests.support.metrics import sample, scrape
from tests.support.nodes import NodeFactory, NodeProcess, run_cli
from tests.support.processes import free_port, wait_for
from tests.support.wire import RawNode, remote_page

NOW = datetime.datetime.now(datetime.UTC)
PAGE = bytes(range(256)) * 16
OTHER_PAGE = bytes(reversed(range(256))) * 16


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A cluster CA with nodes n1 and n2, clients app and other and admin ops (with tokens), and a
    second CA "theirs" with an admin ops (with a token)."""
    folder = tmp_path / "pki"
    init_ca(folder, now=NOW)
    for node in ("n1", "n2", "A", "B"):  # a node serves with a certificate of its own name
        issue(folder, Identity(Role.NODE, node), ["127.0.0.1"], now=NOW)
    for identity in (
        Identity(Role.CLIENT, "app"),
        Identity(Role.CLIENT, "other"),
        Identity(Role.ADMIN, "ops"),
    ):
        issue(folder, identity, now=NOW, token=True)
    theirs = tmp_path / "theirs"
    init_ca(theirs, now=NOW)
    issue(theirs, Identity(Role.ADMIN, "ops"), now=NOW, token=True)
    return folder


def tls_of(folder: Path, name: str) -> TLS:
    return TLS(folder / "ca.crt", folder / f"{name}.crt", folder / f"{name}.key")


def tls_node(
    node_factory: NodeFactory, pki: Path, tmp_path: Path, *flags: str
) -> tuple[NodeProcess, str]:
    """Node n1 with TLS on TCP and a unix socket; the node and its socket's address."""
    unix = f"unix://{tmp_path / 'n1.sock'}"
    tls = tls_of(pki, "n1")
    node = node_factory.start(
        "n1",
        extra_flags=(
            *("--tls-ca", str(tls.ca), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)),
            *("--listen", unix),
            *flags,
        ),
    )
    return node, unix


def test_a_token_proves_a_caller_and_a_bad_one_is_refused(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    node, unix = tls_node(node_factory, pki, tmp_path)
    with SyncClient(unix, client_name="a", token=pki / "app.token") as by_file:
        pool = by_file.new_pool(persistent=True)
        assert by_file.put_many(pool, [(1, 0, PAGE)]) == [True]
    token = (pki / "app.token").read_text().strip()
    with SyncClient(node.address, client_name="a", tls=tls_of(pki, "app"), token=token) as both:
        assert both.stats()["pool_count"] == 1
    refusals = {}
    for case, options in {
        "another CA's token": {"target": unix, "token": tmp_path / "theirs" / "ops.token"},
        "certificate and token disagree": {
            "target": node.address,
            "tls": tls_of(pki, "app"),
            "token": pki / "ops.token",
        },
    }.items():
        target = options.pop("target")
        with SyncClient(target, client_name="a", **options) as client:  # type: ignore[arg-type]
            with pytest.raises(Unauthenticated) as refused:
                client.stats()
            refusals[case] = refused.value.message.split(" (")[0]
    ops_theirs = (tmp_path / "theirs" / "ops.token").read_text()
    assert refusals == {
        "another CA's token": f"token {ops_theirs[:12]!r}... refused: bad signature",
        "certificate and token disagree": (
            "the caller's certificate names <Identity client 'app'> but its token "
            "names <Identity admin 'ops'>: send one, or both of the same identity"
        ),
    }


def test_the_cli_sends_a_token_from_its_flag_or_the_environment(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    _, unix = tls_node(node_factory, pki, tmp_path)
    with_flag = run_cli("param", "get", "zcache", "--node", unix, "--token", pki / "ops.token")
    assert (with_flag.returncode, with_flag.stdout, with_flag.stderr) == (0, "zcache on\n", "")
    theirs = tmp_path / "theirs" / "ops.token"
    from_env = run_cli("stats", "--node", unix, env={"RAMSTER_TOKEN": str(theirs)})
    assert from_env.returncode == 1
    assert from_env.stderr.startswith(
        f"ramster stats: token {theirs.read_text()[:12]!r}... refused: bad signature"
    )
    missing = run_cli("stats", "--node", unix, "--token", tmp_path / "none.token")
    assert (missing.returncode, missing.stderr) == (
        2,
        f"ramster stats: token file {str(tmp_path / 'none.token')!r} is invalid: No such file "
        "or directory\n",
    )


def refusal(call: Callable[[], object]) -> str:
    """The class and message of the `RamsterError` `call()` raises."""
    try:
        call()
    except RamsterError as error:
        return f"{type(error).__name__}: {error.message}"
    raise AssertionError("not refused")


def test_an_identity_reaches_only_its_own_pools_whatever_label_it_names(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    node, unix = tls_node(node_factory, pki, tmp_path)
    label = "label"
    with (
        SyncClient(node.address, label, tls=tls_of(pki, "app")) as x,
        SyncClient(node.address, label, tls=tls_of(pki, "other")) as y,
        SyncClient(unix, label, token=pki / "other.token") as y_by_token,
        SyncClient(unix, label) as local,
    ):
        pool = x.new_pool(persistent=True)
        assert x.put_many(pool, [(1, 0, PAGE)]) == [True]
        missing = f"PoolNotFound: pool_id {pool} does not exist for client 'client:other/label'"
        assert {
            "get": refusal(lambda: y.get_many(pool, [(1, 0)], free=False)),
            "put": refusal(lambda: y.put_many(pool, [(1, 0, OTHER_PAGE)])),
            "flush": refusal(lambda: y.flush_page(pool, 1, 0)),
            "flush object": refusal(lambda: y.flush_object(pool, 1)),
            "destroy": refusal(lambda: y.destroy_pool(pool)),
            "get by token": refusal(lambda: y_by_token.get_many(pool, [(1, 0)], free=False)),
            "local get": refusal(lambda: local.get_many(pool, [(1, 0)], free=False)),
        } == {
            "get": missing,
            "put": missing,
            "flush": missing,
            "flush object": missing,
            "destroy": missing,
            "get by token": missing,
            "local get": missing.replace("client:other", "local:local"),
        }
        # Y's own pool of the same label has the same id, and none of X's pages.
        assert y.new_pool(persistent=True) == pool
        assert y.get_many(pool, [(1, 0)], free=False) == [None]
        assert y.put_many(pool, [(1, 0, OTHER_PAGE)]) == [True]
        assert y_by_token.get_many(pool, [(1, 0)], free=False) == [OTHER_PAGE]
        assert x.get_many(pool, [(1, 0)], free=False) == [PAGE]
        x.destroy_pool(pool)
        assert y.get_many(pool, [(1, 0)], free=False) == [OTHER_PAGE]
        assert refusal(lambda: x.get_many(pool, [(1, 0)], free=False)) == (
            f"PoolNotFound: pool_id {pool} does not exist for client 'client:app/label'"
        )
        # The pool cap is per identity and label: X at its cap leaves Y's label its own.
        for _ in range(16):
            x.new_pool()
        assert refusal(lambda: x.new_pool()) == (
            "ResourceExhausted: client 'client:app/label' holds 16 pools: max_pools_per_client "
            "is 16"
        )
        assert y.new_pool() == 1


def test_the_frontends_attach_with_a_token_and_keep_their_pools_to_it(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    node, unix = tls_node(node_factory, pki, tmp_path)
    frontswap = Frontswap(unix, "swap", token=pki / "app.token")
    cleancache = Cleancache(unix, "cache", token=pki / "app.token")
    try:
        frontswap.init(0, nr_pages=8)
        fs = cleancache.init_fs()
        assert frontswap.wait_ready(20) and cleancache.wait_ready(20)
        assert frontswap.store(0, 3, PAGE) is True
        cleancache.put_page(fs, (1, 0, 0), 2, PAGE)
        with SyncClient(node.address, "swap", tls=tls_of(pki, "other")) as other:
            assert refusal(lambda: other.destroy_pool(0)) == (
                "PoolNotFound: pool_id 0 does not exist for client 'client:other/swap'"
            )
        assert frontswap.load(0, 3) == PAGE
        assert cleancache.get_page(fs, (1, 0, 0), 2) == PAGE
    finally:
        frontswap.close()
        cleancache.close()


def test_a_shared_pool_is_shared_only_within_the_identity_that_names_it(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    node, unix = tls_node(node_factory, pki, tmp_path)
    shared = uuid.UUID("0f5d6a4e-3b2c-4d1e-8f00-123456789abc")
    with (
        SyncClient(node.address, "a", tls=tls_of(pki, "app")) as x_a,
        SyncClient(unix, "b", token=pki / "app.token") as x_b,
        SyncClient(node.address, "a", tls=tls_of(pki, "other")) as y_a,
        SyncClient(unix, "a") as local_a,
        SyncClient(unix, "b") as local_b,
    ):
        pools = {
            name: client.new_pool(shared_uuid=shared)
            for name, client in (("x_a", x_a), ("x_b", x_b), ("y_a", y_a), ("local_a", local_a))
        }
        assert x_a.put_many(pools["x_a"], [(1, 0, PAGE)]) == [True]
        assert x_b.get_many(pools["x_b"], [(1, 0)], free=False) == [PAGE]
        assert y_a.get_many(pools["y_a"], [(1, 0)], free=False) == [None]
        assert local_a.get_many(pools["local_a"], [(1, 0)], free=False) == [None]
        assert y_a.put_many(pools["y_a"], [(1, 0, OTHER_PAGE)]) == [True]
        assert x_b.get_many(pools["x_b"], [(1, 0)], free=False) == [PAGE]
        # Callers over the unix socket without certificate or token share the local identity.
        assert local_a.put_many(pools["local_a"], [(2, 0, PAGE)]) == [True]
        local_b_pool = local_b.new_pool(shared_uuid=shared)
        assert local_b.get_many(local_b_pool, [(2, 0)], free=False) == [PAGE]
        assert x_a.get_many(pools["x_a"], [(2, 0)], free=False) == [None]
        assert x_a.stats()["pool_count"] == 5


def test_recovered_pools_go_back_to_the_identity_that_made_them(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str, pki: Path
) -> None:
    cluster = Cluster(node_factory, etcd.url, etcd_cluster)
    app, other = tls_of(pki, "app"), tls_of(pki, "other")
    label = "L" * 256  # the longest label: peers keep "client:app/" before it
    try:
        node_a = cluster.start(
            "A", "4MiB", listen=f"127.0.0.1:{free_port()}", tls=(tls_of(pki, "A"), app)
        )
        cluster.start("B", "16MiB", tls=(tls_of(pki, "B"), app))
        numbers = pages_of(range(48))  # about 6 MiB packed: A ships a part to B
        with SyncClient(node_a.address, label, tls=app) as before:
            store_all(before, before.new_pool(persistent=True), numbers)
            done_shipping(before.stats)
        held = cluster.stats("B")["foreign_pers_pages"]
        assert held > 0

        node_a.kill()
        members = lambda: [m.name for m in asyncio.run(list_members(etcd.url, etcd_cluster))]  # noqa: E731
        wait_for(lambda: members() == ["B"], what="A out of the view")
        node_a.start()
        with (
            SyncClient(node_a.address, label, tls=other) as stranger,
            SyncClient(node_a.address, label, tls=app) as owner,
        ):
            assert stranger.stats()["pers_pages_recovered"] == held
            stranger_pool = stranger.new_pool(persistent=True)
            assert len(read_back(stranger, stranger_pool, numbers, free=False)) == len(numbers)
            owner_pool = owner.new_pool(persistent=True)
            assert owner_pool == stranger_pool  # the same id, another identity's pool
            missing = read_back(owner, owner_pool, numbers, free=False)
            assert len(numbers) - len(missing) == held
    finally:
        cluster.close()


def hello(address: str, tls: TLS | None, cluster: str = "ramster") -> str:
    """Who answers Peer/Hello at `address` for a caller with `tls`: the node's name, or the
    refusal."""

    async def call() -> str:
        link = PeerLink(0, address, 9, "0" * 16, 5.0, cluster=cluster, name="probe", tls=tls)
        try:
            return (await link.hello()).name
        except RamsterError as error:
            return f"{type(error).__name__}: {error.message}"
        finally:
            await link.close()

    return asyncio.run(call())


def changes(client: SyncClient) -> dict[str, str]:
    """What each Admin change answers `client`: done, or its refusal."""
    calls: dict[str, Callable[[], object]] = {
        "param set": lambda: client.set_param("origin_grace", "600"),
        "drain": lambda: client.drain(0.5),
        "undrain": lambda: client.undrain(),
        "forget-node": lambda: client.forget_node("gone"),
        "stats": lambda: client.stats(),
    }
    answers = {}
    for name, call in calls.items():
        try:
            call()
            answers[name] = "done"
        except RamsterError as error:
            answers[name] = f"{type(error).__name__}: {error.message}"
    return answers


def denied(method: str, roles: str, identity: str) -> str:
    role = identity.split()[1]
    return (
        f"PermissionDenied: {method} is for {roles} identities: the caller is {identity} "
        f"(role {role})"
    )


def test_peer_and_admin_changes_refuse_callers_of_other_roles(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    node, unix = tls_node(node_factory, pki, tmp_path)
    app = "<Identity client 'app'>"
    assert {
        "client certificate": hello(node.address, tls_of(pki, "app")),
        "admin certificate": hello(node.address, tls_of(pki, "ops")),
        "local": hello(unix, None),
        "node certificate": hello(node.address, tls_of(pki, "n2")),
    } == {
        "client certificate": denied("Peer/Hello", "node", app),
        "admin certificate": denied("Peer/Hello", "node", "<Identity admin 'ops'>"),
        "local": denied("Peer/Hello", "node", "<Identity local 'local'>"),
        "node certificate": "n1",
    }
    with SyncClient(node.address, "app", tls=tls_of(pki, "app")) as client:
        assert changes(client) == {
            "param set": denied("Admin/SetParam", "admin", app),
            "drain": denied("Admin/Drain", "admin", app),
            "undrain": denied("Admin/Undrain", "admin", app),
            "forget-node": denied("Admin/ForgetNode", "admin", app),
            "stats": "done",
        }
    with SyncClient(unix, "app") as local:
        assert changes(local)["param set"] == denied(
            "Admin/SetParam", "admin", "<Identity local 'local'>"
        )
    with SyncClient(node.address, "peer", tls=tls_of(pki, "n2")) as peer:
        assert refusal(lambda: peer.new_pool()) == denied(
            "Tmem/NewPool", "client, admin, local", "<Identity node 'n2'>"
        )
    assert "origin_grace" not in node.log()


def test_the_guards_refusal_carries_its_reason_beside_the_message(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    node, _ = tls_node(node_factory, pki, tmp_path)
    with RawNode(node.address, tls=tls_of(pki, "app")) as wire:
        answer = wire.admin("SetParam", name="client_quota", value="0")
    assert answer.refusal == (
        grpc.StatusCode.PERMISSION_DENIED,
        denied("Admin/SetParam", "admin", "<Identity client 'app'>").split(": ", 1)[1],
    )
    assert answer.error_details == (ErrorInfo(reason="PERMISSION_DENIED", domain="ramster.io"),)


def test_calls_the_guard_refuses_are_timed_and_counted_with_their_status(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    node, _ = tls_node(node_factory, pki, tmp_path, "--metrics", "127.0.0.1:0")
    app = "<Identity client 'app'>"
    with SyncClient(node.address, "app", tls=tls_of(pki, "app")) as client:
        for _ in range(2):
            assert refusal(lambda: client.drain(0.5)) == denied("Admin/Drain", "admin", app)
        client.new_pool()
    families = scrape(node)
    drain = {"node": "n1", "grpc_service": "ramster.api.v1.Admin", "grpc_method": "Drain"}
    handled = families["ramster_grpc_server_handled"]
    assert sample(handled, "_total", **drain, grpc_code="PERMISSION_DENIED") == 2
    assert sample(families["ramster_grpc_server_handling_seconds"], "_count", **drain) == 2
    new_pool = {**drain, "grpc_service": "ramster.api.v1.Tmem", "grpc_method": "NewPool"}
    assert sample(handled, "_total", **new_pool, grpc_code="OK") == 1


def test_an_admin_identity_or_the_admin_socket_may_change_settings_and_is_logged(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    admin_socket = tmp_path / "admin.sock"
    node, unix = tls_node(node_factory, pki, tmp_path, "--admin-listen", f"unix://{admin_socket}")
    assert oct(admin_socket.stat().st_mode & 0o777) == oct(0o600)
    done = dict.fromkeys(("param set", "drain", "undrain", "forget-node", "stats"), "done")
    with SyncClient(node.address, "ops", tls=tls_of(pki, "ops")) as by_certificate:
        assert changes(by_certificate) == done | {
            "forget-node": "FailedPrecondition: cannot forget node 'gone': a cluster without etcd "
            "has no names to release; remove it from every --peer list (its pages go after "
            "origin_grace)"
        }
    with SyncClient(unix, "ops", token=pki / "ops.token") as by_token:
        assert by_token.set_param("origin_grace", "700")["origin_grace"] == "700"
    with SyncClient(f"unix://{admin_socket}", "ops") as over_admin_socket:
        assert over_admin_socket.set_param("origin_grace", "800")["origin_grace"] == "800"
        assert over_admin_socket.undrain() is False
    log = node.log()
    assert [line.split(" ramster.node: ")[1] for line in log.splitlines() if " by <" in line] == [
        "param 'origin_grace' set to '600' by <Identity admin 'ops'> over the main listener",
        "drain (0.5 s) by <Identity admin 'ops'> over the main listener",
        "undrain by <Identity admin 'ops'> over the main listener",
        "forget-node 'gone' by <Identity admin 'ops'> over the main listener",
        "param 'origin_grace' set to '700' by <Identity admin 'ops'> over the main listener",
        "param 'origin_grace' set to '800' by <Identity local 'local'> over the admin socket",
        "undrain by <Identity local 'local'> over the admin socket",
    ]


def test_peers_are_served_on_their_own_listener_and_published_there(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str, pki: Path
) -> None:
    peer_port = free_port()
    cluster = Cluster(node_factory, etcd.url, etcd_cluster)
    app = tls_of(pki, "app")
    try:
        a = cluster.start(
            "A",
            "16MiB",
            flags=("--peer-listen", f"127.0.0.1:{peer_port}"),
            tls=(tls_of(pki, "A"), app),
        )
        cluster.start("B", "4MiB", tls=(tls_of(pki, "B"), app))
        n2 = tls_of(pki, "n2")
        assert hello(f"127.0.0.1:{peer_port}", n2, etcd_cluster) == "A"
        # gRPC's UNIMPLEMENTED, which the client library has no class for.
        assert hello(a.address, n2, etcd_cluster) == "InternalError: Method not found!"
        members = asyncio.run(list_members(etcd.url, etcd_cluster))
        assert {m.name: m.address for m in members}["A"] == f"127.0.0.1:{peer_port}"
        with SyncClient(f"127.0.0.1:{peer_port}", "app", tls=app) as wrong_door:
            assert refusal(lambda: wrong_door.new_pool()) == "InternalError: Method not found!"
        # B ships to A through A's peer listener, and reads its pages back.
        b = cluster.clients["B"]
        pool = b.new_pool(persistent=True)
        numbers = pages_of(range(48))
        store_all(b, pool, numbers)
        done_shipping(b.stats)
        assert cluster.stats("A")["foreign_pers_pages"] > 0
        assert read_back(b, pool, numbers, free=False) == []
    finally:
        cluster.close()


def test_a_node_calls_for_its_own_pages_only_in_its_current_epoch(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str, pki: Path
) -> None:
    """A node certificate proves a node, not which: the origin a request names must be the member
    of that number in the holder's view (etcd's), the node the certificate names, in the epoch it
    runs in now. n2 is a node of the cluster's CA that is no member."""
    cluster = Cluster(node_factory, etcd.url, etcd_cluster)
    try:
        app = tls_of(pki, "app")
        cluster.start("A", "16MiB", tls=(tls_of(pki, "A"), app))
        cluster.start("B", "16MiB", tls=(tls_of(pki, "B"), app))
        b_number, b_epoch = cluster.stats("B")["node_number"], cluster.nodes["B"].epoch

        def put(as_node: str, number: int, epoch: str) -> tuple[grpc.StatusCode, str]:
            origin = peer_pb2.Origin(node_number=number, epoch=epoch)
            request = peer_pb2.PeerPutRequest(origin=origin, pages=[remote_page(1, 7, 0, PAGE, 1)])
            with RawNode(cluster.nodes["A"].address, tls=tls_of(pki, as_node)) as wire:
                return wire.call("/ramster.api.v1.Peer/PutPages", request).refusal

        def recover(as_node: str, number: int) -> tuple[grpc.StatusCode, str]:
            request = peer_pb2.RecoverRequest(
                origin=peer_pb2.Origin(node_number=number, epoch=b_epoch)
            )
            with RawNode(cluster.nodes["A"].address, tls=tls_of(pki, as_node)) as wire:
                return wire.first("/ramster.api.v1.Peer/Recover", request).refusal

        wait_for(lambda: put("B", b_number, b_epoch)[0] == grpc.StatusCode.OK, what="A sees B")
        other = "0" * 16
        not_its_own = (
            grpc.StatusCode.PERMISSION_DENIED,
            f"origin.node_number {b_number} is node 'B': <Identity node 'n2'> may call for its "
            "own pages only",
        )
        assert {
            "another node's number": put("n2", b_number, b_epoch),
            "another node recovering": recover("n2", b_number),
            "no member": put("n2", 9, b_epoch),
            "its own number, another epoch": put("B", b_number, other),
            "itself": put("B", b_number, b_epoch),
        } == {
            "another node's number": not_its_own,
            "another node recovering": not_its_own,
            "no member": (
                grpc.StatusCode.UNAVAILABLE,
                "origin.node_number 9 is no member this node knows yet: retry shortly",
            ),
            "its own number, another epoch": (
                grpc.StatusCode.UNAVAILABLE,
                f"origin.epoch '{other}' is not the epoch node {b_number} runs in as this node "
                f"knows it ('{b_epoch}'): retry shortly",
            ),
            "itself": (grpc.StatusCode.OK, ""),
        }
    finally:
        cluster.close()


def test_exports_are_created_and_deleted_by_admins_and_each_identity_sees_its_own(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    node, unix = tls_node(node_factory, pki, tmp_path)
    app = "<Identity client 'app'>"
    with SyncClient(node.address, "app", tls=tls_of(pki, "app")) as client:
        assert refusal(lambda: client.create_export("disk", 1 << 20)) == denied(
            "Admin/CreateExport", "admin", app
        )
        assert refusal(lambda: client.delete_export("disk")) == denied(
            "Admin/DeleteExport", "admin", app
        )
        assert client.list_exports() == []
    with SyncClient(node.address, "ops", tls=tls_of(pki, "ops")) as ops:
        created = ops.create_export("disk", 1 << 20)
        assert (created.name, created.owner, created.size) == ("disk", "admin:ops", 1 << 20)
        assert [export.name for export in ops.list_exports()] == ["disk"]
    with SyncClient(unix, "local") as local:
        assert local.list_exports() == []
    log = node.log()
    assert "export create 'disk' of 1048576 bytes by <Identity admin 'ops'> over the main " in log
