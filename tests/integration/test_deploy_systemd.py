"""deploy/systemd: the node and swap units pass ``systemd-analyze verify``, every ``ramster``
command line in them is one the CLI takes, and the swap unit comes up after the node and goes
down before it (so swapoff reads every page back while the node still serves)."""

from __future__ import annotations

import configparser
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ramster.cli.main import _parser

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
RAMSTER = str(Path(sys.executable).with_name("ramster"))
INSTALLED = "/usr/local/bin/ramster"
SWAP_ENV = {"RAMSTER_SWAP_SIZE": "4GiB", "RAMSTER_SWAP_PRIORITY": "10"}
"""The settings docs/swap.md shows for /etc/ramster/swap.env."""


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    for path in UNITS.glob("*.service"):
        (tmp_path / path.name).write_text(path.read_text().replace(INSTALLED, RAMSTER))
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(map(str, tmp_path.glob("*.service")))],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
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
