"""`make run`'s job, end to end: the `ramster demo` command as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

RAMSTER = Path(sys.executable).with_name("ramster")


def test_demo_overcommits_node_1_and_verifies_every_page() -> None:
    result = subprocess.run(
        [str(RAMSTER), "demo", "--pages", "2048", "--memory", "1MiB"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    taken = re.search(
        r"frontswap: ([\d,]+) of 1,536 pages taken .*?, ([\d,]+) loaded back, 0 lost", out
    )
    assert taken is not None and taken.group(1) == taken.group(2), out
    shipped = re.search(r"^1 node1 +[\d,]+ +\S+ +\S+ +([\d,]+) +0 +1\.0MiB$", out, re.MULTILINE)
    assert shipped is not None and int(shipped.group(1).replace(",", "")) > 0, out
    held = re.findall(r"^[23] node[23] +[\d,]+ +\S+ +\S+ +0 +([\d,]+) +8\.0MiB$", out, re.MULTILINE)
    assert len(held) == 2 and sum(int(h.replace(",", "")) for h in held) > 0, out
    assert out.rstrip().endswith("OK: 0 wrong pages, 0 lost swap pages")


def test_demo_refuses_a_malformed_size_naming_it() -> None:
    result = subprocess.run(
        [str(RAMSTER), "demo", "--memory", "12x"], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stderr) == (
        2,
        "ramster demo: argument --memory: size '12x' is invalid: expected a whole number of bytes "
        "such as 4096, 64MiB or 768Mi\n",
    )
