"""Outside ramster/tmem, the tmem tree changes through its public surface only (issue 11),
proven with real violations.

Ruff's private-member-access rule (SLF001, pyproject.toml) holds in ramster/remote and
ramster/holder: they reach pools and pages through the `PageTable`'s methods, never a private
field of it. Inside ramster/tmem the tree's own modules may work on each other's fields.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")

PRIVATE_ACCESS = """\
from ramster.tmem.table import PageTable


def clients(table: PageTable) -> object:
    return table._clients
"""


def private_access_findings(path: str, source: str) -> list[str]:
    """The SLF001 lines ruff reports, with the project's rules, for `source` as the file at
    `path`."""
    result = subprocess.run(
        [str(RUFF), "check", "--output-format", "concise", "--stdin-filename", path, "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    return [line for line in result.stdout.splitlines() if "SLF001" in line]


@pytest.mark.parametrize("path", ["ramster/remote/probe.py", "ramster/holder/probe.py"])
def test_remote_and_holder_may_not_touch_a_private_field_of_the_tree(path: str) -> None:
    findings = private_access_findings(path, PRIVATE_ACCESS)
    assert findings == [
        f"{path}:5:12: SLF001 Private member accessed: `_clients`",
    ]


def test_the_tree_own_package_works_on_its_private_fields() -> None:
    assert private_access_findings("ramster/tmem/probe.py", PRIVATE_ACCESS) == []
