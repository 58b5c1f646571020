"""The extras a command needs beyond the base install, checked before it imports them.

``pip install ramster`` is the client: the library and the commands that call a node. Running a
node (`ramster node`), a local cluster (`up`, `demo` without ``--node``) or talking to etcd
(`members`, ``--cluster``) needs the extras ``[node]`` and ``[etcd]``; such a command calls
`require` first, so that without them a person reads the one line to run instead of a traceback.
Which distributions an extra holds is read from the installed metadata (pyproject.toml is the one
place that lists them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import metadata

from ramster.errors import FailedPrecondition

NODE = "node"
"""The node's own dependencies: health and reflection services, etcd's client."""
ETCD = "etcd"
"""The bundled etcd binary of `ramster up`, `ramster demo` and the tests."""

# A requirement of an extra as the metadata writes it: `etcd3aio<0.4,>=0.3; extra == "node"`.
_EXTRA_REQUIREMENT = re.compile(r'^([A-Za-z0-9][A-Za-z0-9._-]*)[^;]*;\s*extra\s*==\s*"([^"]+)"$')


class MissingExtra(FailedPrecondition):
    """A command needs an extra that is not installed; the CLI exits 2 with its message."""


def require(*extras: str) -> None:
    """Return if every distribution of each of `extras` is installed; `MissingExtra` naming
    the install command otherwise."""
    missing = missing_extras(extras, metadata.requires("ramster") or ())
    if missing:
        joined = ",".join(missing)
        noun = "extra" if len(missing) == 1 else "extras"
        raise MissingExtra(
            f"needs the {noun} {', '.join(missing)}, not installed: pip install 'ramster[{joined}]'"
        )


def missing_extras(extras: Iterable[str], requirements: Iterable[str]) -> list[str]:
    """Those of `extras` with a distribution of `requirements` (metadata lines) not installed;
    `ValueError` for an extra no requirement names (a typo here would pass every check)."""
    by_extra: dict[str, list[str]] = {}
    for line in requirements:
        match = _EXTRA_REQUIREMENT.match(line.strip())
        if match is not None:
            by_extra.setdefault(match[2], []).append(match[1])
    missing = []
    for extra in extras:
        if extra not in by_extra:
            raise ValueError(f"extra {extra!r} is not declared: expected one of {sorted(by_extra)}")
        if not all(_installed(name) for name in by_extra[extra]):
            missing.append(extra)
    return missing


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True
