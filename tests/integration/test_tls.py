"""mTLS on a real node: with ``--tls-*`` every TCP listener takes only callers with a
certificate of the cluster CA, the unix socket takes local callers without one, and nodes call
each other with their certificates. Without TLS a node serves loopback and unix sockets only,
unless ``--insecure``. The certificates are made by the real ``ramster certs``."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ramster.rpc.caller import caller_identity
from ramster.rpc.listeners import bind_address
from ramster.wire.tls import TLS
from tests.support.etcd import EtcdProcess
from tests.support.nodes import RAMSTER, NodeFactory

SERVING = "SERVING"


def ramster(*args: str | Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAMSTER_")}
    return subprocess.run(
        [RAMSTER, *map(str, args)], capture_output=True, text=True, timeout=60, env=clean
    )


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """Two clusters' folders, "ours" and "theirs", each with a CA, nodes n1 and n2 and a client
    app, made by ``ramster certs``."""
    folders = {}
    for cluster in ("ours", "theirs"):
        folder = folders[cluster] = tmp_path / "pki" / cluster
        assert ramster("certs", "init", folder).returncode == 0
        for role, name in (("node", "n1"), ("node", "n2"), ("client", "app")):
            assert ramster("certs", "issue", folder, role, name).returncode == 0
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
    refused = ramster("node", "--listen", "0.0.0.0:0", "--name", "n1")
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
    stranger = node_factory.start("n2x", extra_flags=(*tls_flags(tls_of(theirs, "n2")), *static))
    assert "node 2 started with static membership: 1 of 1 peers answer" in n2.log()
    assert "node 2 started with static membership: 0 of 1 peers answer" in stranger.log()
