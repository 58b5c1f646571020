"""NBD over TCP on a node with TLS: a client must STARTTLS with a certificate of the cluster CA
(`nbdinfo` with ``tls-certificates``), one in the clear learns nothing, and a proven client sees
the exports of its identity (every one for an admin)."""

from __future__ import annotations

import datetime
import re
import shutil
from pathlib import Path

import pytest

from ramster.client import TLS, SyncClient
from ramster.trust.files import init_ca, issue
from ramster.trust.identity import Identity, Role
from tests.support.nbd import missing_tools, run_tool, run_tool_failing
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.tools import require


@pytest.fixture(autouse=True)
def _nbd_clients() -> None:
    require(f"NBD clients absent: {', '.join(missing_tools())}" if missing_tools() else None)


NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    folder = tmp_path / "pki"
    init_ca(folder, now=NOW)
    issue(folder, Identity(Role.NODE, "n1"), ["127.0.0.1"], now=NOW)
    issue(folder, Identity(Role.CLIENT, "app"), now=NOW)
    issue(folder, Identity(Role.ADMIN, "ops"), now=NOW)
    return folder


def tls_of(pki: Path, name: str) -> TLS:
    return TLS(pki / "ca.crt", pki / f"{name}.crt", pki / f"{name}.key")


def gnutls_folder(pki: Path, name: str, tmp_path: Path) -> Path:
    """The folder libnbd's ``tls-certificates`` reads: ca-cert.pem, client-cert.pem and
    client-key.pem."""
    folder = tmp_path / f"nbd-{name}"
    folder.mkdir()
    shutil.copy(pki / "ca.crt", folder / "ca-cert.pem")
    shutil.copy(pki / f"{name}.crt", folder / "client-cert.pem")
    shutil.copy(pki / f"{name}.key", folder / "client-key.pem")
    return folder


def tls_node(node_factory: NodeFactory, pki: Path) -> tuple[NodeProcess, str]:
    """Node n1 with TLS, NBD on a free loopback port; the node and that address."""
    tls = tls_of(pki, "n1")
    node = node_factory.start(
        "n1",
        extra_flags=(
            *("--tls-ca", str(tls.ca), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)),
            *("--nbd", "127.0.0.1:0"),
        ),
    )
    return node, node.ready["nbd"][0]


def listed(address: str, certificates: Path) -> list[str]:
    shown = run_tool(
        "nbdinfo", "--list", "--json", f"nbds://{address}/?tls-certificates={certificates}"
    ).stdout
    return re.findall(r'"export-name": "(\w+)"', shown)


def test_nbd_over_tcp_needs_starttls_and_a_client_sees_its_identitys_exports(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    node, address = tls_node(node_factory, pki)
    with SyncClient(node.address, "ops", tls=tls_of(pki, "ops")) as ops:
        ops.create_export("disk", 1 << 20)
    admin, client = gnutls_folder(pki, "ops", tmp_path), gnutls_folder(pki, "app", tmp_path)
    assert listed(address, admin) == ["disk"]
    assert listed(address, client) == []
    size = run_tool("nbdinfo", "--size", f"nbds://{address}/disk?tls-certificates={admin}")
    assert size.stdout == f"{1 << 20}\n"
    run_tool(
        "qemu-io",
        "--image-opts",
        "-c",
        "write -P 9 0 8k",
        f"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={address.split(':')[1]},"
        f"export=disk,tls-creds=tls0",
        "--object",
        f"tls-creds-x509,id=tls0,endpoint=client,dir={admin}",
    )
    refused = run_tool_failing(
        "nbdinfo", "--size", f"nbds://{address}/disk?tls-certificates={client}"
    )
    assert "server has no export named 'disk'" in refused
    in_clear = run_tool_failing("nbdinfo", "--size", f"nbd://{address}/disk")
    assert "server requires TLS encryption first" in in_clear
    with SyncClient(node.address, "ops", tls=tls_of(pki, "ops")) as ops:
        assert ops.list_exports()[0].pages == 2
