"""The memory limit of this process's cgroup: what a budget of ``--memory 75%`` is a share of
(`ramster.units.Share`). In a Kubernetes pod that is the container's ``limits.memory``.

cgroup v2 keeps it in ``memory.max`` (``max``: none) of the process's cgroup; v1 in
``memory.limit_in_bytes`` of its memory hierarchy, where "none" reads as a number near 2**63.
The cgroup's path comes from ``/proc/self/cgroup``; a container whose cgroup is mounted as the
root of ``/sys/fs/cgroup`` (its own cgroup namespace, or Docker's v1 mounts) finds the file at
the root. Where the memory controller is on v1 (a hybrid host), v1 is read.
"""

from __future__ import annotations

from pathlib import Path

UNLIMITED_V1 = 1 << 62
"""cgroup v1 says "no limit" with the largest page count in bytes (9223372036854771712 on 4 KiB
pages): any limit from here up is none."""


def limit_files(own_cgroups: str, root: Path) -> list[Path]:
    """Where the memory limit of the process whose ``/proc/PID/cgroup`` is `own_cgroups` may be
    under `root` (the cgroup mount), most specific first."""
    v2: list[Path] = []
    for line in own_cgroups.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.strip().lstrip("/")
        if number == "0" and controllers == "":
            v2 = [root / relative / "memory.max", root / "memory.max"]
        elif "memory" in controllers.split(","):
            memory = root / "memory"
            return [memory / relative / "memory.limit_in_bytes", memory / "memory.limit_in_bytes"]
    return v2


def limit_of(text: str) -> int | None:
    """The limit in bytes that a ``memory.max`` or ``memory.limit_in_bytes`` holding `text`
    sets; None for none."""
    word = text.strip()
    if word == "max":
        return None
    limit = int(word)
    return None if limit >= UNLIMITED_V1 else limit


def memory_limit(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """This process's memory limit in bytes, None if its cgroup sets none (or there is no cgroup
    file to read: not Linux, or no memory controller)."""
    try:
        own = proc_cgroup.read_text()
    except FileNotFoundError:
        return None
    for path in limit_files(own, root):
        if path.is_file():
            return limit_of(path.read_text())
    return None
