"""`make run`'s job, end to end: the `ramster demo` command as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

RAMSTER = Path(sys.executable).with_name("ramster")


def test_demo_stores_and_verifies_the_corpus_through_both_frontends() -> None:
    result = subprocess.run(
        [str(RAMSTER), "demo", "--pages", "2048", "--memory", "2MiB"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "before the backend: fs got fake pool id 1000; 0 of 64 early swap stores taken" in out
    taken = re.search(r"frontswap: (\d+) of 1024 pages taken .*?, (\d+) loaded back, 0 lost", out)
    assert taken is not None and taken.group(1) == taken.group(2)
    evictions = re.search(r"cleancache: \d+ of 1024 pages hit after (\d+) evictions", out)
    assert evictions is not None and int(evictions.group(1)) > 0
    assert out.rstrip().endswith("OK: 0 wrong pages, 0 lost swap pages")


def test_demo_refuses_a_malformed_size_naming_it() -> None:
    result = subprocess.run(
        [str(RAMSTER), "demo", "--memory", "12x"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert (
        "argument --memory: size '12x' is invalid: expected a size such as 4096, 64MiB or 1GiB"
        in (result.stderr)
    )
