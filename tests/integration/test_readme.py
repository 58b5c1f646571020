"""The README's client example runs as written against a real node (issue 15): the only change is
the node's address, a free port here instead of the default one. Its `assert` lines are part of
it: the frontends' first store waits for the backend (`wait_ready`), then comes back exact.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.nodes import start_node

README = Path(__file__).resolve().parents[2] / "README.md"
DEFAULT_ADDRESS = "127.0.0.1:7470"


def client_example() -> str:
    """The first python block after the README's "## The client library" heading."""
    text = README.read_text()
    section = text[text.index("## The client library") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README's client library section has no python example"
    return match.group(1)


def test_the_client_example_in_the_readme_runs_as_written(tmp_path: Path) -> None:
    example = client_example()
    assert example.count(DEFAULT_ADDRESS) == 3  # SyncClient, Frontswap, Cleancache
    node, info = start_node(tmp_path, "readme")
    page = bytes(range(256)) * 16
    scope: dict[str, object] = {
        "page": page,
        "pages": [bytes([n]) * 4096 for n in range(3)],
        "offset": 5,
        "inode": 11,
        "n": 2,
    }
    try:
        exec(compile(example.replace(DEFAULT_ADDRESS, info["address"]), "README.md", "exec"), scope)
        # Frontswap's gets are exclusive: the example's load took the page.
        assert scope["swap"].load(0, 5) is None  # type: ignore[attr-defined]
    finally:
        for name in ("swap", "cache"):
            frontend = scope.get(name)
            if frontend is not None:
                frontend.close()  # type: ignore[attr-defined]
        node.stop()
