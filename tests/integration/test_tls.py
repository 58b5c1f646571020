"""mTLS on a real node: with ``--tls-*`` every TCP listener takes only callers with a
certificate of the cluster CA, the unix socket takes local callers without one, and nodes call
each other with their certificates. Without TLS a node serves loopback and unix sockets only,
unless ``--insecure``. The certificates are made by the real ``ramster certs``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ramster.client import TLS, Cleancache, Frontswap, SyncClient, Unavailable
from ramster.rpc.caller import caller_identity
from ramster.rpc.listeners import bind_address
from tests.support.cluster import (
    Cluster,
    done_shipping,
    pages_of,
    read_back,
    remote_view,
    store_all,
)
from tests.support.etcd import EtcdProcess
from tests.support.nodes import NodeFactory, run_cli

SERVING = "SERVING"
PAGE = bytes(range(256)) * 16


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """Two clusters' folders, "ours" and "theirs", each with a CA, nodes n1, n2, n2x, A and B (a
    node serves with a certificate of its own name) and a client app, made by ``ramster certs``."""
    folders = {}
    for cluster in ("ours", "theirs"):
        folder = folders[cluster] = tmp_path / "pki" / cluster
        assert run_cli("certs", "init", folder).returncode == 0
        nodes = [("node", name) for name in ("n1", "n2", "n2x", "A", "B")]
        for role, name in (*nodes, ("client", "app")):
            assert run_cli("certs", "issue", folder, role, name).returncode == 0
    return folders


def tls_of(folder: Path, name: str, ca: Path | None = None) -> TLS:
    return TLS(ca or folder / "ca.crt", folder / f"{name}.crt", folder / f"{name}.key")


def tls_flags(tls: TLS) -> tuple[str, ...]:
    return ("--tls-ca", str(tls.ca), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key))


def health(target: str, credentials: grpc.ChannelCredentials | None) -> str:
    """SERVING, or the status code the health check at `target` failed with."""

    async def check() -> str:
        channel = (
            grpc.aio.insecure_channel(target)
            if credentials is None
            else grpc.aio.secure_channel(target, credentials)
        )
        async with channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            except grpc.aio.AioRpcError as error:
                return error.code().name
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    return asyncio.run(check())


def test_a_tls_node_takes_only_certificates_of_its_ca(
    node_factory: NodeFactory,
    etcd: EtcdProcess,
    etcd_cluster: str,
    pki: dict[str, Path],
    tmp_path: Path,
) -> None:
    ours, theirs = pki["ours"], pki["theirs"]
    unix = f"unix://{tmp_path / 'n1.sock'}"
    node = node_factory.start(
        "n1",
        extra_flags=(
            *tls_flags(tls_of(ours, "n1")),
            "--listen",
            unix,
            "--etcd",
            etcd.url,
            "--cluster",
            etcd_cluster,
        ),
    )
    trusting_ours = grpc.ssl_channel_credentials((ours / "ca.crt").read_bytes())
    answers = {
        "cluster client": health(node.address, tls_of(ours, "app").channel_credentials()),
        "cluster node": health(node.address, tls_of(ours, "n2").channel_credentials()),
        "another CA's client": health(
            node.address, tls_of(theirs, "app", ca=ours / "ca.crt").channel_credentials()
        ),
        "no certificate": health(node.address, trusting_ours),
        "plaintext": health(node.address, None),
        "unix socket, local": health(unix, None),
    }
    assert answers == {
        "cluster client": SERVING,
        "cluster node": SERVING,
        "another CA's client": "UNAVAILABLE",
        "no certificate": "UNAVAILABLE",
        "plaintext": "UNAVAILABLE",
        "unix socket, local": SERVING,
    }
    assert (
        f"node n1 serves TLS on {node.address} (client certificates of CA {ours / 'ca.crt'}); "
        "unix sockets serve without TLS, as the local identity"
    ) in node.log()


def test_a_client_checks_the_node_too(node_factory: NodeFactory, pki: dict[str, Path]) -> None:
    node = node_factory.start("n1", extra_flags=tls_flags(tls_of(pki["theirs"], "n1")))
    ours = tls_of(pki["ours"], "app")
    assert health(node.address, ours.channel_credentials()) == "UNAVAILABLE"


def test_without_tls_a_node_serves_only_loopback_unless_insecure(
    node_factory: NodeFactory,
) -> None:
    refused = run_cli("node", "--listen", "0.0.0.0:0", "--name", "n1")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == (
        "ramster node: listen '0.0.0.0:0' is not loopback: serve it with --tls-ca, --tls-cert "
        "and --tls-key, or pass --insecure to serve it in plaintext\n"
    )
    loopback = node_factory.start("n1")
    assert health(loopback.address, None) == SERVING
    assert (
        "node n1 serves without TLS, so only on loopback and unix sockets: give --tls-ca, "
        "--tls-cert and --tls-key to serve other addresses"
    ) in loopback.log()
    insecure = node_factory.start("n2", listen="0.0.0.0:0", extra_flags=("--insecure",))
    port = insecure.address.rsplit(":", 1)[1]
    assert health(f"127.0.0.1:{port}", None) == SERVING
    assert (
        f"node n2 serves WITHOUT TLS on 0.0.0.0:{port} (--insecure): whoever reaches it may call it"
    ) in insecure.log()


def test_the_server_tells_who_called(pki: dict[str, Path], tmp_path: Path) -> None:
    """`caller_identity` on the node's own listeners (`bind_address`): a certificate's identity
    over TLS, the local identity over the unix socket."""
    ours = pki["ours"]
    unix = f"unix://{tmp_path / 'probe.sock'}"

    async def who(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return repr(caller_identity(context)).encode()

    async def call(target: str, credentials: grpc.ChannelCredentials | None) -> str:
        channel = (
            grpc.aio.insecure_channel(target)
            if credentials is None
            else grpc.aio.secure_channel(target, credentials)
        )
        async with channel:
            reply: bytes = await channel.unary_unary("/probe/Who")(b"", timeout=5)
            return reply.decode()

    async def scenario() -> list[str]:
        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(who)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("probe", {"Who": handler}),)
        )
        credentials = tls_of(ours, "n1").server_credentials()
        port, _ = bind_address(server, "127.0.0.1:0", 0o600, credentials)
        _, socket_file = bind_address(server, unix, 0o600, credentials)
        await server.start()
        try:
            return [
                await call(f"127.0.0.1:{port}", tls_of(ours, "app").channel_credentials()),
                await call(f"127.0.0.1:{port}", tls_of(ours, "n2").channel_credentials()),
                await call(unix, None),
            ]
        finally:
            await server.stop(None)
            assert socket_file is not None
            socket_file.remove()

    assert asyncio.run(scenario()) == [
        "<Identity client 'app'>",
        "<Identity node 'n2'>",
        "<Identity local 'local'>",
    ]


def test_nodes_call_each_other_with_their_certificates(
    node_factory: NodeFactory, pki: dict[str, Path]
) -> None:
    ours, theirs = pki["ours"], pki["theirs"]
    n1 = node_factory.start("n1", extra_flags=tls_flags(tls_of(ours, "n1")))
    static = ("--peer", n1.address, "--node-number", "2")
    n2 = node_factory.start("n2", extra_flags=(*tls_flags(tls_of(ours, "n2")), *static))
    stranger = node_factory.start("n2x", extra_flags=(*tls_flags(tls_of(theirs, "n2x")), *static))
    assert "node 2 started with static membership: 1 of 1 peers answer" in n2.log()
    assert "node 2 started with static membership: 0 of 1 peers answer" in stranger.log()


def test_the_client_library_calls_a_tls_node_with_its_certificate(
    node_factory: NodeFactory, pki: dict[str, Path]
) -> None:
    ours, theirs = pki["ours"], pki["theirs"]
    node = node_factory.start("n1", extra_flags=tls_flags(tls_of(ours, "n1")))
    app = tls_of(ours, "app")
    with SyncClient(node.address, client_name="app", tls=app) as client:
        assert repr(client).startswith(f"<SyncClient {node.address} client='app' tls ")
        pool = client.new_pool(persistent=True)
        assert client.put_many(pool, [(7, 0, PAGE)]) == [True]
        assert client.get_many(pool, [(7, 0)], free=False) == [PAGE]
    for caller in (None, tls_of(theirs, "app", ca=ours / "ca.crt")):
        with (
            SyncClient(node.address, timeout=2, tls=caller) as refused,
            pytest.raises(Unavailable),
        ):
            refused.stats()


def test_the_frontends_attach_to_a_tls_node(
    node_factory: NodeFactory, pki: dict[str, Path]
) -> None:
    node = node_factory.start("n1", extra_flags=tls_flags(tls_of(pki["ours"], "n1")))
    app = tls_of(pki["ours"], "app")
    frontswap = Frontswap(node.address, "swap", tls=app)
    cleancache = Cleancache(node.address, "cache", tls=app)
    try:
        frontswap.init(0, nr_pages=8)
        fs = cleancache.init_fs()
        assert frontswap.wait_ready(20) and cleancache.wait_ready(20)
        assert frontswap.store(0, 3, PAGE) is True
        cleancache.put_page(fs, (1, 0, 0), 2, PAGE)
        assert frontswap.load(0, 3) == PAGE
        assert cleancache.get_page(fs, (1, 0, 0), 2) == PAGE
    finally:
        frontswap.close()
        cleancache.close()


def test_the_cli_talks_to_a_tls_node_with_flags_or_environment(
    node_factory: NodeFactory, pki: dict[str, Path]
) -> None:
    ours = pki["ours"]
    node = node_factory.start("n1", extra_flags=tls_flags(tls_of(ours, "n1")))
    admin = tls_of(ours, "app")
    with_flags = run_cli("param", "get", "zcache", "--node", node.address, *tls_flags(admin))
    assert (with_flags.returncode, with_flags.stdout, with_flags.stderr) == (0, "zcache on\n", "")
    environment = {
        "RAMSTER_TLS_CA": str(admin.ca),
        "RAMSTER_TLS_CERT": str(admin.cert),
        "RAMSTER_TLS_KEY": str(admin.key),
    }
    from_env = run_cli("stats", "--node", node.address, "--json", env=environment)
    assert from_env.returncode == 0, from_env.stderr
    assert json.loads(from_env.stdout)["state"]["node_name"] == "n1"
    plaintext = run_cli("stats", "--node", node.address)
    assert plaintext.returncode == 1
    assert plaintext.stderr.startswith("ramster stats: Admin/GetStats: node unavailable (")
    partial = run_cli("drain", "--node", node.address, "--tls-ca", str(admin.ca))
    assert (partial.returncode, partial.stderr) == (
        2,
        "ramster drain: --tls-cert and --tls-key missing: --tls-ca, --tls-cert and --tls-key "
        "go together\n",
    )


def test_a_tls_cluster_ships_pages_between_its_nodes_and_reads_them_back(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str, pki: dict[str, Path]
) -> None:
    ours = pki["ours"]
    cluster = Cluster(node_factory, etcd.url, etcd_cluster)
    try:
        app = tls_of(ours, "app")
        cluster.start("A", "4MiB", tls=(tls_of(ours, "A"), app))
        cluster.start("B", "16MiB", tls=(tls_of(ours, "B"), app))
        a = cluster.clients["A"]
        pool = a.new_pool(persistent=True)
        numbers = pages_of(range(48))  # 3072 pages, about 6 MiB packed: more than A's budget
        store_all(a, pool, numbers)
        quiet = remote_view(cluster, "A", ("B",), done_shipping(lambda: cluster.stats("A")))
        assert quiet["B"] > 0, quiet
        assert quiet["pers_pages_remoted"] == quiet["remote_pers_pages"] == quiet["B"], quiet
        assert read_back(a, pool, numbers, free=False) == []
    finally:
        cluster.close()
