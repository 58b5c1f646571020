"""How long each node has been out of the cluster view, so that nodes gone for good can be let go
of after `origin_grace` (their pages on holders, the flushes queued for them). Pure: no I/O.

A node that is merely restarting or partitioned from etcd comes back within the grace and loses
nothing: its clock restarts whenever it is seen. While this node cannot trust its own view (etcd
out of reach: the view is frozen) no clock runs.

Not here: dropping the pages (`ramster.holder.epochs.forget_origin`), the flushes
(`ramster.remote.peers.Peers.forget_gone`), the timer that asks (`ramster.cluster`).
"""

from __future__ import annotations

from collections.abc import Collection


class AbsenceClock:
    """Since when each tracked node has been out of the view (monotonic seconds)."""

    def __init__(self) -> None:
        self._since: dict[int, float] = {}

    def __repr__(self) -> str:
        return f"<AbsenceClock absent={sorted(self._since)}>"

    def expired(
        self, now: float, grace: float, live: Collection[int], tracked: Collection[int]
    ) -> list[int]:
        """The `tracked` nodes (those this node keeps something for) that have been out of the
        `live` view for `grace` seconds or more as of `now`, by number; starts the clock of those
        newly out, and forgets the clocks of nodes back in view or no longer tracked."""
        for number in [n for n in self._since if n in live or n not in tracked]:
            del self._since[number]
        for number in tracked:
            if number not in live:
                self._since.setdefault(number, now)
        return sorted(n for n, since in self._since.items() if now - since >= grace)

    def reset(self) -> None:
        """The view cannot be trusted now: every absence is counted again from the next look."""
        self._since.clear()

    def drop(self, number: int) -> None:
        """Node `number` was let go of: nothing is kept for it any more."""
        self._since.pop(number, None)
