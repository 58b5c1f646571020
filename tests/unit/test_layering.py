"""The pure core stays pure: ruff's banned-imports rule keeps gRPC and generated code out of
ramster/tmem, ramster/zcache, ramster/frontends, ramster/holder and ramster/remote/restore.py
(DESIGN §2), proven with real violations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")


def banned_import_findings(path: str, source: str) -> list[str]:
    """TID251 lines ruff reports for `source` as if it were the file at `path`."""
    result = subprocess.run(
        [
            str(RUFF),
            "check",
            "--select",
            "TID251",
            "--output-format",
            "concise",
            "--stdin-filename",
            path,
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    return [line for line in result.stdout.splitlines() if "TID251" in line]


@pytest.mark.parametrize("package", ["tmem", "zcache", "frontends", "holder"])
@pytest.mark.parametrize(
    ("source", "banned"),
    [("import grpc\n", "grpc"), ("from ramster.api.v1 import tmem_pb2\n", "ramster.api")],
)
def test_the_pure_core_may_not_import_grpc_or_generated_code(
    package: str, source: str, banned: str
) -> None:
    findings = banned_import_findings(f"ramster/{package}/probe.py", source)
    assert len(findings) == 1
    assert f"`{banned}` is banned" in findings[0]


def test_the_rpc_layer_may_import_grpc() -> None:
    assert banned_import_findings("ramster/rpc/probe.py", "import grpc\n") == []
