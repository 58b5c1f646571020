"""Read a Dockerfile the way the tests need it, with no container engine: stages and instructions.

Enough of the Dockerfile syntax for ``deploy/Dockerfile``: comments, line continuations, stages
(``FROM ... AS name``), exec-form (JSON) and shell-form arguments, flags such as ``--from`` and
``--chmod``. Not here: variable expansion beyond ``ARG`` defaults used in ``FROM``, heredocs.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_FLAG = re.compile(r"^--([a-z-]+)=(\S+)$")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, COPY, ...
    flags: dict[str, str]  # --from=build -> {"from": "build"}
    args: list[str]  # exec form: the JSON list; shell form: split like a shell would
    exec_form: bool
    line: int

    def __repr__(self) -> str:
        return f"<{self.keyword} {self.flags or ''}{self.args} line {self.line}>"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        """Every ENV of the stage, in order (``KEY=VALUE`` pairs only)."""
        env: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in instruction.args:
                key, sep, value = pair.partition("=")
                assert sep, f"ENV {pair!r} on line {instruction.line}: only KEY=VALUE is read here"
                env[key] = value
        return env


@dataclass
class Dockerfile:
    path: Path
    args: dict[str, str]  # ARG defaults before the first FROM
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"{self.path} has no stage {name!r}")

    def copies(self) -> list[tuple[Stage, Instruction, list[str], str]]:
        """Every COPY/ADD from the build context: (stage, instruction, sources, destination)."""
        found = []
        for stage in self.stages:
            for instruction in stage.instructions:
                if instruction.keyword in ("COPY", "ADD") and "from" not in instruction.flags:
                    *sources, destination = instruction.args
                    found.append((stage, instruction, sources, destination))
        return found


def parse(path: Path) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, text in _logical_lines(path.read_text()):
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        flags: dict[str, str] = {}
        while (match := _FLAG.match(rest.split(" ", 1)[0])) is not None:
            flags[match.group(1)] = match.group(2)
            rest = rest.split(" ", 1)[1].strip() if " " in rest else ""
        prefix = []
        if keyword == "HEALTHCHECK" and rest.upper().startswith("CMD "):
            prefix, rest = ["CMD"], rest[4:].strip()
        exec_form = rest.startswith("[")
        words: list[str] = [*prefix, *(json.loads(rest) if exec_form else shlex.split(rest))]
        instruction = Instruction(keyword, flags, words, exec_form, number)
        if keyword == "ARG" and not stages:
            name, _, default = words[0].partition("=")
            args[name] = default
        elif keyword == "FROM":
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        else:
            assert stages, f"{path}:{number}: {keyword} before FROM"
            stages[-1].instructions.append(instruction)
    return Dockerfile(path, args, stages)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, instruction text) with comments dropped and continuations joined."""
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        lines.append((start, " ".join(pending)))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued line"
    return lines


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether a .dockerignore's `patterns` keep `path` (relative, '/'-separated) out of the build
    context: the last pattern that matches it or one of its parent folders decides."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        if glob.startswith("**/"):
            matched = any(fnmatch.fnmatchcase(part, glob[3:]) for part in parts)
        else:
            matched = any(fnmatch.fnmatchcase(prefix, glob) for prefix in prefixes)
        if matched:
            verdict = not negated
    return verdict


def ignore_patterns(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]
