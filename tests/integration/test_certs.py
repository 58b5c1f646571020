"""``ramster certs`` as an operator runs it: the real console script writes a CA and what it
issues, openssl accepts the chain, and gRPC's TLS accepts a certificate of the cluster CA and
refuses none or another CA's (`ramster.wire.tls`)."""

from __future__ import annotations

import asyncio
import shutil
import stat
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ramster.trust.identity import Identity, Role, identity_of_certificate
from ramster.wire.tls import TLS
from tests.support.nodes import run_cli

HEALTH = health.aio.HealthServicer  # type: ignore[attr-defined]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def openssl_verify(ca: Path, certificate: Path) -> str:
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is part of the Debian base image"
    result = subprocess.run(
        [openssl, "verify", "-CAfile", str(ca), str(certificate)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or result.stderr.strip()


def test_init_and_issue_write_a_cluster_that_openssl_verifies(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    init = run_cli("certs", "init", folder)
    assert (init.returncode, init.stderr) == (0, "")
    assert init.stdout == f"wrote {folder}/ca.crt\nwrote {folder}/ca.key\n"
    node = run_cli("certs", "issue", folder, "node", "n1", "--host", "10.0.0.1", "--days", "30")
    assert (node.returncode, node.stderr) == (0, "")
    assert node.stdout == "".join(f"wrote {folder}/n1.{ext}\n" for ext in ("crt", "key", "pagekey"))
    client = run_cli("certs", "issue", folder, "client", "app", "--token")
    assert client.stdout == "".join(
        f"wrote {folder}/app.{ext}\n" for ext in ("crt", "key", "token")
    )
    admin = run_cli("certs", "issue", folder, "admin", "ops")
    assert admin.returncode == 0
    assert {p.name: mode(p) for p in folder.iterdir()} == {
        "ca.crt": 0o644,
        "ca.key": 0o600,
        "n1.crt": 0o644,
        "n1.key": 0o600,
        "n1.pagekey": 0o600,
        "app.crt": 0o644,
        "app.key": 0o600,
        "app.token": 0o600,
        "ops.crt": 0o644,
        "ops.key": 0o600,
    }
    assert mode(folder) == 0o700
    assert len((folder / "n1.pagekey").read_bytes()) == 32
    for name, role in (("n1", Role.NODE), ("app", Role.CLIENT), ("ops", Role.ADMIN)):
        certificate = folder / f"{name}.crt"
        assert openssl_verify(folder / "ca.crt", certificate) == f"{certificate}: OK"
        assert identity_of_certificate(certificate.read_bytes()) == Identity(role, name)
    assert (folder / "app.token").read_text().startswith("rt1.")


def test_another_clusters_ca_does_not_verify(tmp_path: Path) -> None:
    for cluster in ("one", "two"):
        assert run_cli("certs", "init", tmp_path / cluster).returncode == 0
    assert run_cli("certs", "issue", tmp_path / "one", "client", "app").returncode == 0
    verdict = openssl_verify(tmp_path / "two" / "ca.crt", tmp_path / "one" / "app.crt")
    assert "verification failed" in verdict


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["issue", "{dir}", "root", "x"],
            "ramster certs issue: argument ROLE: role 'root' is invalid: expected node, client "
            "or admin",
        ),
        (
            ["issue", "{dir}", "node", "x y"],
            "ramster certs issue: argument name: name 'x y' is invalid: expected 1-253 letters, "
            "digits, '.', '_' or '-', starting alnum",
        ),
        (
            ["issue", "{dir}", "node", "n1", "--host", "a b"],
            "ramster certs issue: argument --host: host 'a b' is invalid: expected a DNS name "
            "(labels of letters, digits, '-' or '_') or an IP address",
        ),
        (
            ["issue", "{dir}", "node", "n1", "--days", "0"],
            "ramster certs issue: argument --days: '0' is invalid: expected an int in 1..36500",
        ),
        (
            ["issue", "{dir}/none", "node", "n1"],
            "ramster certs: {dir}/none/ca.crt: no such file (run `ramster certs init` first)",
        ),
        (
            ["init", "{dir}"],
            "ramster certs: {dir}/ca.crt exists: refusing to overwrite it (--force does)",
        ),
        (
            ["issue", "{dir}", "client", "app"],
            "ramster certs: {dir}/app.crt exists: refusing to overwrite it (--force does)",
        ),
    ],
)
def test_a_refusal_is_one_line_naming_what_to_fix(
    tmp_path: Path, args: list[str], message: str
) -> None:
    assert run_cli("certs", "init", tmp_path).returncode == 0
    assert run_cli("certs", "issue", tmp_path, "client", "app").returncode == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("certs", *(arg.format(dir=tmp_path) for arg in args))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == message.format(dir=tmp_path) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_force_replaces_the_files(tmp_path: Path) -> None:
    assert run_cli("certs", "init", tmp_path).returncode == 0
    assert run_cli("certs", "issue", tmp_path, "node", "n1").returncode == 0
    key = (tmp_path / "n1.key").read_bytes()
    assert run_cli("certs", "issue", tmp_path, "node", "n1", "--force").returncode == 0
    assert (tmp_path / "n1.key").read_bytes() != key
    assert openssl_verify(tmp_path / "ca.crt", tmp_path / "n1.crt") == f"{tmp_path}/n1.crt: OK"


def health_check(port: int, credentials: grpc.ChannelCredentials) -> str:
    """The health of the server on `port` as a caller with `credentials` sees it: SERVING, or
    the status code its call failed with."""

    async def check() -> str:
        async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            except grpc.aio.AioRpcError as error:
                return error.code().name
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    return asyncio.run(check())


def test_tls_accepts_only_a_certificate_of_the_cluster_ca(tmp_path: Path) -> None:
    for cluster in ("ours", "theirs"):
        folder = tmp_path / cluster
        assert run_cli("certs", "init", folder).returncode == 0
        assert run_cli("certs", "issue", folder, "node", "n1").returncode == 0
        assert run_cli("certs", "issue", folder, "client", "app").returncode == 0
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    server_tls = TLS(ours / "ca.crt", ours / "n1.crt", ours / "n1.key")
    answers: dict[str, str] = {}

    async def serve_and_call() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(HEALTH(), server)
        port = server.add_secure_port("127.0.0.1:0", server_tls.server_credentials())
        await server.start()
        try:
            callers = {
                "cluster client": TLS(ours / "ca.crt", ours / "app.crt", ours / "app.key"),
                "other CA's client": TLS(ours / "ca.crt", theirs / "app.crt", theirs / "app.key"),
            }
            for caller, tls in callers.items():
                answers[caller] = await asyncio.to_thread(
                    health_check, port, tls.channel_credentials()
                )
            no_certificate = grpc.ssl_channel_credentials((ours / "ca.crt").read_bytes())
            answers["no certificate"] = await asyncio.to_thread(health_check, port, no_certificate)
            server_of_another_ca = TLS(theirs / "ca.crt", ours / "app.crt", ours / "app.key")
            answers["client trusting another CA"] = await asyncio.to_thread(
                health_check, port, server_of_another_ca.channel_credentials()
            )
        finally:
            await server.stop(None)

    asyncio.run(serve_and_call())
    assert answers == {
        "cluster client": "SERVING",
        "other CA's client": "UNAVAILABLE",
        "no certificate": "UNAVAILABLE",
        "client trusting another CA": "UNAVAILABLE",
    }
