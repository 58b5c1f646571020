"""When to ship pages, how many, and to which peer: pure decisions (docs/design.md §4, §5).

Shipping starts when the store passes its high watermark and goes on down to the low one.
Ephemeral pages go first (a peer may drop them, so they are cheaper to place). The target is the
`remote_target` node if it is up and willing, else (auto, also while the target is down) the live
peer with the most free bytes, never this node, skipping peers that recently failed. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodemanager.model import MemberInfo
from ramster.errors import InvalidArgument
from ramster.params import ModuleParams


@dataclass(frozen=True, slots=True)
class RemotifyConfig:
    """How the remote layer ships pages.

    batch_pages: pages per Peer/PutPages call at most (>= 64, default 1024).
    batch_bytes: packed bytes per call at most (>= 256 KiB, default 2 MiB).
    in_flight: batches on the wire at once (default 2: packing overlaps the peer's storing).
    interval: seconds between pressure checks while idle (default 0.05).
    peer_timeout: deadline of every peer call in seconds (default 5).
    failure_backoff: seconds a peer that failed is skipped for placement (default 2).

    Not here: what an operator tunes at run time, the module params `read_timeout_ms`,
    `repair_rate` and `recover_timeout` (`ramster.params`).
    """

    batch_pages: int = 1024
    batch_bytes: int = 2 << 20
    in_flight: int = 2
    interval: float = 0.05
    peer_timeout: float = 5.0
    failure_backoff: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.batch_pages, int) or self.batch_pages < 64:
            raise InvalidArgument.field("batch_pages", self.batch_pages, "an int >= 64")
        if not isinstance(self.batch_bytes, int) or self.batch_bytes < 256 * 1024:
            raise InvalidArgument.field("batch_bytes", self.batch_bytes, "bytes >= 256 KiB")
        if type(self.in_flight) is not int or not 1 <= self.in_flight <= 16:
            raise InvalidArgument.field("in_flight", self.in_flight, "an int in 1..16")
        for name in ("interval", "peer_timeout", "failure_backoff"):
            if not getattr(self, name) > 0:
                raise InvalidArgument.field(name, getattr(self, name), "seconds > 0")


def bytes_to_ship(used: int, memory: int, high: float, low: float) -> int:
    """Bytes to move off this node now: down to the low watermark once above the high one."""
    if used <= high * memory:
        return 0
    return int(used - low * memory)


def brings_home(used: int, memory: int, low: float) -> bool:
    """Whether a persistent page read from a peer comes home: only below the low watermark, so
    it is not among the next pages shipped out."""
    return used < low * memory


def classes_to_ship(params: ModuleParams) -> list[bool]:
    """Page classes to ship, in order, as `persistent` flags: ephemeral first."""
    if not params.ramster:
        return []
    classes = []
    if params.eph_remotify:
        classes.append(False)
    if params.pers_remotify:
        classes.append(True)
    return classes


def holding(info: MemberInfo) -> bool:
    """Whether a member keeps other nodes' pages: backend and remote layer on, not leaving."""
    return info.zcache and info.ramster and not info.draining


def copies_wanted(members: dict[int, MemberInfo], me: int, params: ModuleParams) -> int:
    """How many nodes must hold a persistent page now: `persistent_copies`, but no more than
    the nodes that can hold one (this node and every holding peer); one while this node's
    remote layer is off."""
    if not params.ramster:
        return 1
    peers = sum(holding(info) for number, info in members.items() if number != me)
    return min(params.persistent_copies, 1 + peers)


def placement(
    members: dict[int, MemberInfo], me: int, skip: frozenset[int], target: int | None = None
) -> list[int]:
    """The peers to place pages on, best first: the `target` node alone if given and willing,
    else every willing peer by free bytes (a target that is down must not stop pages from
    moving: persistent puts fail once this node is full). Never this node, nor a skipped one."""

    def willing(info: MemberInfo) -> bool:
        return info.number != me and holding(info) and info.number not in skip

    chosen = members.get(target) if target is not None else None
    if chosen is not None and willing(chosen):
        return [chosen.number]
    candidates = [info for info in members.values() if willing(info) and info.free_bytes > 0]
    candidates.sort(key=lambda info: (-info.free_bytes, info.number))
    return [info.number for info in candidates]


def target_down(members: dict[int, MemberInfo], me: int, target: int | None) -> bool:
    """Whether a `remote_target` is set but cannot take pages (absent, not holding, or this
    node): placement is automatic meanwhile."""
    if target is None:
        return False
    info = members.get(target)
    return target == me or info is None or not holding(info)
