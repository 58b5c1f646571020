"""``ramster members``: the nodes of a cluster as etcd lists them, as a table for a person.

`list_members` reads once (no lease, no watch); `format_members` lays the result out. The
``ramster`` command wires them to its flags (`ramster.cli`).
"""

from __future__ import annotations

from nodemanager.etcd import EtcdCredentials, read_members
from nodemanager.model import MemberInfo

_MIB = 1024 * 1024
_HEADER = ("NUMBER", "NAME", "ADDRESS", "FREE/CAPACITY MiB", "ZCACHE", "RAMSTER", "STATE")
_RIGHT = {0, 3}  # columns aligned right: the numbers


async def list_members(
    endpoints: str,
    cluster: str = "ramster",
    timeout: float = 5.0,
    credentials: EtcdCredentials | None = None,
) -> list[MemberInfo]:
    """Every live member of `cluster`, by number, from etcd at `endpoints`
    (``http[s]://HOST:PORT``, comma-separated) shown `credentials`; `Unavailable` if etcd does
    not answer."""
    return await read_members(endpoints, cluster, timeout, credentials)


def format_members(members: list[MemberInfo]) -> str:
    """A table, one line per member and a header line; free and capacity in MiB; the state is
    ``draining`` while the node leaves (it takes no new pages), else ``up``."""

    def switch(on: bool) -> str:
        return "on" if on else "off"

    rows = [_HEADER] + [
        (
            str(m.number),
            m.name,
            m.address,
            f"{m.free_bytes / _MIB:.1f}/{m.capacity_bytes / _MIB:.1f}",
            switch(m.zcache),
            switch(m.ramster),
            "draining" if m.draining else "up",
        )
        for m in members
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_HEADER))]
    lines = [
        "  ".join(
            cell.rjust(width) if column in _RIGHT else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    return "\n".join(lines) + "\n"
