"""The outside tools the tests run, and what a test does when one is missing: skipped on a
developer's machine, failed under CI (``CI=true``), where `.ci/run` (Debian packages) and `make
setup` (wheels such as kubectl's) install every one of them. A test that cannot run in CI must
never pass there unseen.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI") == "true"


def find_tool(name: str) -> str | None:
    """`name` on the PATH, or beside this Python (a tool installed as a wheel into the
    virtualenv, which need not be on the PATH)."""
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def require(missing: str | None) -> None:
    """Nothing if `missing` is None; else skip the test, or fail it under CI, saying what is
    missing."""
    if missing is None:
        return
    if IN_CI:
        pytest.fail(f"{missing}: CI must provide it (.ci/run, make setup)", pytrace=False)
    pytest.skip(missing)


def require_tool(name: str, package: str) -> str:
    """The path of tool `name` (from `package`), or the test is skipped (failed under CI)."""
    path = find_tool(name)
    require(None if path is not None else f"{name} is not installed ({package})")
    assert path is not None
    return path
