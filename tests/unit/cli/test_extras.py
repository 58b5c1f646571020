"""`ramster.cli.extras`: which extras a command lacks, read from the installed metadata, and the
version, read from it too (pyproject.toml is the one place of both)."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

import ramster
from ramster.cli import extras

ROOT = Path(__file__).resolve().parents[3]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

REQUIREMENTS = [
    "lz4<5,>=4.3",
    'etcd3aio<0.4,>=0.3; extra == "node"',
    'grpcio-reflection<2,>=1.85.1; extra == "node"',
    'ramster-no-such-distribution>=1; extra == "etcd"',
    'pytest<10,>=8; extra == "test"',
]


def test_an_extra_whose_distributions_are_installed_is_not_missing() -> None:
    assert extras.missing_extras(["node", "test"], REQUIREMENTS) == []


def test_an_extra_with_a_distribution_not_installed_is_missing() -> None:
    assert extras.missing_extras(["node", "etcd"], REQUIREMENTS) == ["etcd"]


def test_an_extra_no_requirement_names_is_refused() -> None:
    with pytest.raises(ValueError) as error:
        extras.missing_extras(["nodes"], REQUIREMENTS)
    assert (
        str(error.value)
        == "extra 'nodes' is not declared: expected one of ['etcd', 'node', 'test']"
    )


def test_the_development_install_has_every_extra_of_the_commands() -> None:
    extras.require(extras.NODE, extras.ETCD)
    assert sorted(PROJECT["optional-dependencies"]) == ["bench", "dev", "etcd", "node", "test"]


def test_the_version_is_the_one_of_the_pyproject() -> None:
    assert ramster.__version__ == PROJECT["version"] == importlib.metadata.version("ramster")
