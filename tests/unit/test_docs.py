"""The design the code cites is in the repository: every "docs/design.md §N" names a section
that docs/design.md has, and nothing cites the first design outside the repository any more."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DESIGN = REPO / "docs" / "design.md"
CITED = ("ramster", "nodemanager", "tests", "docs", "proto", "deploy", "tools")
CITATION = re.compile(r"docs/design\.md (§\d+(?:, §?\d+)*)")


def cited_files() -> list[Path]:
    files = [REPO / "README.md", REPO / "pyproject.toml"]
    for folder in CITED:
        files += [
            p for p in (REPO / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
    return [
        p
        for p in files
        if p.suffix in {".py", ".md", ".proto", ".yml", ".yaml", ".toml", ".json", ""}
    ]


def test_every_citation_of_the_design_names_one_of_its_sections() -> None:
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", DESIGN.read_text(), re.M)}
    assert sections == set(range(1, 15))
    cited: dict[int, list[str]] = {}
    for path in cited_files():
        for match in CITATION.finditer(path.read_text(errors="replace")):
            for number in re.findall(r"\d+", match.group(1)):
                cited.setdefault(int(number), []).append(str(path.relative_to(REPO)))
    assert len(cited) >= 10  # the code cites most of the design
    assert {n: where for n, where in cited.items() if n not in sections} == {}


def test_nothing_cites_the_first_design_outside_the_repository() -> None:
    stale = [
        str(path.relative_to(REPO))
        for path in cited_files()
        if path != Path(__file__).resolve()
        and re.search(r"DESIGN(\.md)? ?§|shared/DESIGN", path.read_text(errors="replace"))
    ]
    assert stale == []
