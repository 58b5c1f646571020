"""The node's tmem backend and its module flags: what loading and unloading zcache means here.

While the `zcache` flag is on, a `Tmem` over a `ZCache` serves every client; each load starts a
new, empty backend and bumps `generation`, which frontends watch to replay their registrations.
Turning zcache off drops every pool, so it is refused while persistent pages are stored: they
must come back until flushed. The `ramster` flag is recorded here and acted on by the remote
layer. Pure: the node broadcasts the changes.
"""

from __future__ import annotations

from ramster.errors import FailedPrecondition
from ramster.params import check_param_name, parse_switch, switch_text
from ramster.tmem import Tmem, TmemLimits
from ramster.zcache import ZCache, ZcacheConfig


class Backend:
    """The switchable zcache backend of one node."""

    def __init__(
        self,
        config: ZcacheConfig,
        limits: TmemLimits | None = None,
        zcache: bool = True,
        ramster: bool = True,
    ) -> None:
        self.config = config
        self.limits = limits or TmemLimits()
        self.generation = 0
        self.ramster = ramster
        self.store: ZCache | None = None
        self.tmem: Tmem | None = None
        if zcache:
            self._load()

    def __repr__(self) -> str:
        return (
            f"<Backend zcache={switch_text(self.zcache)} ramster={switch_text(self.ramster)} "
            f"generation={self.generation} store={self.store!r}>"
        )

    @property
    def zcache(self) -> bool:
        return self.tmem is not None

    def require(self) -> Tmem:
        """The loaded backend, or FAILED_PRECONDITION naming how to load it."""
        if self.tmem is None:
            raise FailedPrecondition(
                "the zcache backend is off on this node: turn it on with "
                "`ramster param set zcache on`"
            )
        return self.tmem

    def params(self) -> dict[str, str]:
        return {"zcache": switch_text(self.zcache), "ramster": switch_text(self.ramster)}

    def set_param(self, name: str, text: str) -> bool:
        """Set a module param; True if the node's state changed."""
        value = parse_switch(check_param_name(name), text)
        if name == "ramster":
            changed = value != self.ramster
            self.ramster = value
            return changed
        if value == self.zcache:
            return False
        if value:
            self._load()
        else:
            self._unload()
        return True

    def counters(self) -> dict[str, int]:
        if self.tmem is None or self.store is None:
            return {}
        return {**self.store.counters(), **self.tmem.counters()}

    def _load(self) -> None:
        self.store = ZCache(self.config)
        self.tmem = Tmem(self.store, self.limits)
        self.generation += 1

    def _unload(self) -> None:
        assert self.store is not None
        persistent = self.store.stats.pers_zpages
        if persistent:
            raise FailedPrecondition(
                f"zcache holds {persistent} persistent pages: they must be returned until "
                "flushed, so the backend stays on (flush or destroy their pools first)"
            )
        self.store = self.tmem = None
