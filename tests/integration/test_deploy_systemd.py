"""deploy/systemd: the etcd, node and swap units pass ``systemd-analyze verify``, every
``ramster`` command line in them is one the CLI takes, the swap unit comes up after the node and
goes down before it (so swapoff reads every page back while the node still serves), and the etcd
unit's command line serves clients and members over TLS only, as docs/security.md says, to a
node that joins it with its certificate."""

from __future__ import annotations

import configparser
import json
import os
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ramster.cli.main import _parser
from ramster.launcher import ETCD_BIN
from tests.support.nodes import table_rows
from tests.support.processes import ManagedProcess, free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
RAMSTER = str(Path(sys.executable).with_name("ramster"))
INSTALLED = "/usr/local/bin/ramster"
ETCD_INSTALLED = "/usr/local/bin/etcd"
SWAP_ENV = {"RAMSTER_SWAP_SIZE": "4GiB", "RAMSTER_SWAP_PRIORITY": "10"}
"""The settings docs/swap.md shows for /etc/ramster/swap.env."""


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    for path in UNITS.glob("*.service"):
        text = path.read_text().replace(INSTALLED, RAMSTER).replace(ETCD_INSTALLED, str(ETCD_BIN))
        (tmp_path / path.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(map(str, tmp_path.glob("*.service")))],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "etcd.service",
        "ramster-node.service",
        "ramster-swap.service",
    ]


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("ramster-node.service", "ExecStart"),
        ("ramster-swap.service", "ExecStart"),
        ("ramster-swap.service", "ExecStop"),
    ],
)
def test_every_ramster_command_line_of_the_units_is_one_the_cli_takes(name: str, key: str) -> None:
    line = unit(name)["Service"][key]
    for variable, value in SWAP_ENV.items():
        line = line.replace(f"${{{variable}}}", value)
    program, *args = shlex.split(line)
    assert program == INSTALLED
    parsed = _parser().parse_args(args)
    if args[:2] == ["swap", "on"]:
        assert (parsed.size, parsed.priority) == (4 << 30, 10)
        assert parsed.node == "unix:///run/ramster/admin.sock"
        assert parsed.nbd_socket == Path("/run/ramster/nbd.sock")
    if args[0] == "node":
        assert parsed.nbd == ["unix:///run/ramster/nbd.sock"]
        assert parsed.admin_listen == "unix:///run/ramster/admin.sock"


def test_swap_starts_after_the_node_and_stops_before_it() -> None:
    swap = unit("ramster-swap.service")
    assert swap["Unit"]["Requires"] == swap["Unit"]["After"] == "ramster-node.service"
    assert swap["Service"]["Type"] == "oneshot"
    assert swap["Service"]["RemainAfterExit"] == "yes"
    node = unit("ramster-node.service")
    assert node["Service"]["LimitMEMLOCK"] == "infinity"  # the node locks itself in memory
    assert node["Service"]["RuntimeDirectory"] == "ramster"


def test_etcd_serves_clients_and_members_over_tls_only() -> None:
    service = unit("etcd.service")["Service"]
    program, *args = shlex.split(service["ExecStart"])
    assert program == ETCD_INSTALLED
    given = dict(arg.removeprefix("--").partition("=")[::2] for arg in args)
    assert given == {
        "data-dir": "/var/lib/etcd",
        "listen-client-urls": "https://0.0.0.0:2379",
        "client-cert-auth": "",
        "trusted-ca-file": "/etc/etcd/tls/ca.crt",
        "cert-file": "/etc/etcd/tls/etcd.crt",
        "key-file": "/etc/etcd/tls/etcd.key",
        "listen-peer-urls": "https://0.0.0.0:2380",
        "peer-client-cert-auth": "",
        "peer-trusted-ca-file": "/etc/etcd/tls/ca.crt",
        "peer-cert-file": "/etc/etcd/tls/etcd.crt",
        "peer-key-file": "/etc/etcd/tls/etcd.key",
        "peer-cert-allowed-cn": "etcd",
        "listen-metrics-urls": "http://127.0.0.1:2381",
        "initial-cluster-token": "ramster-etcd",
        "initial-cluster-state": "new",
    }
    # The data directory is systemd's StateDirectory, the etcd user's alone.
    assert (service["StateDirectory"], service["StateDirectoryMode"]) == ("etcd", "0700")
    assert (service["User"], service["Type"]) == ("etcd", "notify")
    assert service["EnvironmentFile"] == "/etc/etcd/etcd.env"


def test_a_node_joins_the_etcd_of_the_unit_with_its_certificate(tmp_path: Path) -> None:
    """The unit's command line with the per-host settings of its header (/etc/etcd/etcd.env) for
    one member on loopback: its ports free ones, its files those of `ramster certs` (etcd's
    certificate names localhost). A node joins with its own certificate and `ramster members`
    lists it; a caller without a certificate is refused at the handshake."""
    pki = tmp_path / "pki"
    for command in (["init"], ["issue", "node", "etcd"], ["issue", "node", "n1"]):
        subprocess.run([RAMSTER, "certs", command[0], str(pki), *command[1:]],
                       check=True, capture_output=True)  # fmt: skip
    client, peer, metrics = free_port(), free_port(), free_port()
    _, *args = shlex.split(unit("etcd.service")["Service"]["ExecStart"])
    local = [
        arg.replace("/var/lib/etcd", str(tmp_path / "etcd-data"))
        .replace("/etc/etcd/tls", str(pki))
        .replace("0.0.0.0:2379", f"127.0.0.1:{client}")
        .replace("0.0.0.0:2380", f"127.0.0.1:{peer}")
        .replace("127.0.0.1:2381", f"127.0.0.1:{metrics}")
        for arg in args
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAMSTER_", "ETCD_"))}
    etcd_env = env | {
        "ETCD_NAME": "host1",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": f"https://localhost:{peer}",
        "ETCD_ADVERTISE_CLIENT_URLS": f"https://localhost:{client}",
        "ETCD_INITIAL_CLUSTER": f"host1=https://localhost:{peer}",
    }
    etcd = ManagedProcess("etcd", [str(ETCD_BIN), *local], tmp_path / "etcd.log", env=etcd_env)
    try:

        def healthy() -> bool:
            url = f"http://127.0.0.1:{metrics}/health"
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    return bool(json.load(response)["health"] == "true")
            except OSError:
                return False

        wait_for(healthy, 30, "etcd's /health")
        endpoint = f"https://127.0.0.1:{client}"
        tls = ["--etcd-ca", str(pki / "ca.crt"), "--etcd-cert", str(pki / "n1.crt"),
               "--etcd-key", str(pki / "n1.key")]  # fmt: skip
        ready = tmp_path / "n1.ready.json"
        node = ManagedProcess(
            "node",
            [RAMSTER, "node", "--listen", "127.0.0.1:0", "--name", "n1", "--memory", "64MiB",
             "--etcd", endpoint, *tls, "--ready-file", str(ready)],
            tmp_path / "n1.log",
            env=env,
        )  # fmt: skip
        try:
            wait_for(ready.exists, 30, "the node joined etcd")

            def members(*flags: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(
                    [RAMSTER, "members", "--cluster", "ramster", "--etcd", endpoint, *flags],
                    capture_output=True, text=True, timeout=30, check=False, env=env,
                )  # fmt: skip

            listed = members(*tls)
            assert listed.returncode == 0, listed.stderr
            assert [row[1] for row in table_rows(listed.stdout)] == ["n1"]
            refused = members("--etcd-ca", str(pki / "ca.crt"))
            assert (refused.returncode, refused.stderr) == (
                1,
                f"ramster members: etcd at {endpoint} is unreachable (reading /ramster/ramster/)\n",
            )
        finally:
            node.stop()
    finally:
        etcd.stop()
