"""The proto files pass `buf lint` (STANDARD, with the exceptions buf.yaml justifies) and `buf
breaking` against the previous release (proto/baseline.json); buf comes from npm through `make
setup` (a missing buf fails under CI). Each check is also shown to catch a real violation.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "proto/baseline.json"
TMEM = Path("proto/ramster/api/v1/tmem.proto")


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    tool = require_tool("buf", "npm @bufbuild/buf, installed by make setup")
    return subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def copy_with(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of buf.yaml and proto/ in which tmem.proto has `old` replaced by `new`."""
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "proto/ramster", tmp_path / "proto/ramster")
    source = (ROOT / TMEM).read_text()
    assert source.count(old) == 1
    (tmp_path / TMEM).write_text(source.replace(old, new))
    return tmp_path


def test_the_protos_pass_buf_lint() -> None:
    result = buf("lint")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_protos_keep_every_promise_of_the_previous_release() -> None:
    result = buf("breaking", "--against", str(BASELINE))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_buf_lint_catches_a_field_name_outside_its_rules(tmp_path: Path) -> None:
    copy = copy_with(tmp_path, "uint64 word0 = 1;", "uint64 Word0 = 1;")
    result = buf("lint", cwd=copy)
    assert result.returncode != 0
    assert 'Field name "Word0" should be lower_snake_case, such as "word0".' in result.stdout


def test_buf_breaking_catches_a_renumbered_field(tmp_path: Path) -> None:
    copy = copy_with(tmp_path, "uint64 word0 = 1;", "uint64 word0 = 4;")
    result = buf("breaking", "--against", str(BASELINE), cwd=copy)
    assert result.returncode != 0
    assert 'Previously present field "1" with name "word0" on message "Oid" was deleted.' in (
        result.stdout
    )
