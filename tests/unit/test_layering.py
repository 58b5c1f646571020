"""The layers keep to their imports (DESIGN §2), proven with real violations.

Ruff's banned-imports rules (pyproject.toml, ramster/client/ruff.toml) keep gRPC and generated
code at the edges that speak it, asyncio out of the pure core, and the node's server side out of
the client library; the client library also imports, and works, with the node's side blocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import ramster.client

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")

CLIENT_RULES = tomllib.loads((ROOT / "ramster/client/ruff.toml").read_text())["lint"]
NODE_SIDE = sorted(CLIENT_RULES["flake8-tidy-imports"]["banned-api"])
"""The modules the client library may not import: the node's server side."""


def banned_import_findings(path: str, source: str) -> list[str]:
    """TID251 and TID253 lines ruff reports for `source` as if it were the file at `path`."""
    result = subprocess.run(
        [
            str(RUFF),
            "check",
            "--select",
            "TID251,TID253",
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
    return [line for line in result.stdout.splitlines() if "TID25" in line]


def assert_banned(path: str, source: str, banned: str) -> None:
    findings = banned_import_findings(path, source)
    assert len(findings) == 1
    assert f"`{banned}` is banned" in findings[0]


@pytest.mark.parametrize(
    "path",
    [
        "ramster/tmem/probe.py",
        "ramster/zcache/probe.py",
        "ramster/frontends/probe.py",
        "ramster/holder/probe.py",
        "ramster/remote/restore.py",
        "ramster/page.py",
        "ramster/remote/policy.py",
    ],
)
@pytest.mark.parametrize(
    ("source", "banned"),
    [("import grpc\n", "grpc"), ("from ramster.api.v1 import tmem_pb2\n", "ramster.api")],
)
def test_the_pure_core_may_not_import_grpc_or_generated_code(
    path: str, source: str, banned: str
) -> None:
    assert_banned(path, source, banned)


@pytest.mark.parametrize(
    "path",
    [
        "ramster/cluster.py",
        "ramster/node.py",
        "ramster/tiered.py",
        "ramster/remote/layer.py",
        "ramster/state.py",
        "nodemanager/etcd.py",
    ],
)
@pytest.mark.parametrize(
    ("source", "banned"),
    [("import grpc\n", "grpc"), ("from ramster.api.v1 import tmem_pb2\n", "ramster.api")],
)
def test_only_the_grpc_edges_may_import_grpc_or_generated_code(
    path: str, source: str, banned: str
) -> None:
    assert_banned(path, source, banned)


@pytest.mark.parametrize(
    "path",
    [
        "ramster/rpc/probe.py",
        "ramster/wire/probe.py",
        "ramster/client/_transport.py",
        "ramster/rpc/server.py",
        "ramster/rpc/listeners.py",
        "ramster/rpc/peer_link.py",
        "nodemanager/etcd_client.py",
    ],
)
def test_the_grpc_edges_may_import_grpc_and_generated_code(path: str) -> None:
    source = "import grpc\nfrom ramster.api.v1 import tmem_pb2\n"
    assert banned_import_findings(path, source) == []


@pytest.mark.parametrize(
    "path",
    [
        "ramster/tmem/probe.py",
        "ramster/zcache/probe.py",
        "ramster/holder/probe.py",
        "ramster/page.py",
        "ramster/remote/policy.py",
        "ramster/remote/restore.py",
    ],
)
def test_the_pure_core_may_not_import_asyncio(path: str) -> None:
    findings = banned_import_findings(path, "import asyncio\n")
    assert len(findings) == 1
    assert "`asyncio` is banned at the module level" in findings[0]


@pytest.mark.parametrize(
    "path",
    ["ramster/remote/layer.py", "ramster/frontends/selfshrink.py", "ramster/client/_sync.py"],
)
def test_the_async_edges_may_import_asyncio(path: str) -> None:
    assert banned_import_findings(path, "import asyncio\n") == []


@pytest.mark.parametrize("path", ["ramster/client/_async.py", "ramster/client/_transport.py"])
@pytest.mark.parametrize("module", NODE_SIDE)
def test_no_client_module_may_import_the_node_side(path: str, module: str) -> None:
    assert_banned(path, f"from {module} import probe\n", module)


def test_in_the_client_only_its_transport_imports_grpc() -> None:
    source = "import grpc\nfrom ramster.api.v1 import tmem_pb2\n"
    findings = banned_import_findings("ramster/client/_async.py", source)
    assert len(findings) == 2
    assert "`grpc` is banned at the module level" in findings[0]
    assert "`ramster.api` is banned at the module level" in findings[1]
    assert banned_import_findings("ramster/client/_transport.py", source) == []


CLIENT_WITHOUT_THE_NODE = """
import asyncio, importlib.abc, json, sys

NODE_SIDE = tuple(sys.argv[1:])


class NodeSideBlocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in NODE_SIDE or name.startswith(tuple(m + "." for m in NODE_SIDE)):
            raise ImportError(f"{name} is the node's side")
        return None


sys.meta_path.insert(0, NodeSideBlocked())
import ramster.client
from ramster.client import Client, InvalidArgument


def refusal(call):
    try:
        call()
    except InvalidArgument as error:
        return error.message
    return None


client = Client("127.0.0.1:1", client_name="probe")
print(json.dumps({
    "all": ramster.client.__all__,
    "repr": repr(client),
    "target": refusal(lambda: Client("nohost")),
    "page_size": refusal(lambda: asyncio.run(client.new_pool(page_size=1000))),
    "oid": refusal(lambda: asyncio.run(client.put(1, (1, 2), 0, b"page"))),
    "rpcs": client.rpc_count,
}))
"""


def test_the_client_library_works_without_the_node_side() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CLIENT_WITHOUT_THE_NODE, *NODE_SIDE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "all": ramster.client.__all__,
        "repr": "<Client 127.0.0.1:1 client='probe' idle rpcs=0>",
        "target": "target 'nohost' is invalid: expected HOST:PORT with a port in 0..65535",
        "page_size": "page_size 1000 is invalid: expected a power of two in 512..65536",
        "oid": "oid (1, 2) is invalid: expected an int or a tuple of three ints",
        "rpcs": 0,
    }
