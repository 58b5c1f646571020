"""The node's tmem backend and its module params: what loading and unloading zcache means here.

While the `zcache` param is on, a `Tmem` over a `ZCache` serves every client; each load starts a
new, empty backend and bumps `generation`, which frontends watch to replay their registrations.
Turning zcache off drops every pool, so it is refused while persistent pages are stored: they
must come back until flushed. The other params are kept here and acted on by the remote layer,
but for `client_quota`, the quota of every client identity but those ``ramster quota set`` gives
one of their own (`set_quota`): both are kept here, and hold every backend loaded
(`ramster.tmem.quota`). Pure: the node broadcasts the changes.
"""

from __future__ import annotations

from ramster.errors import FailedPrecondition, Unavailable
from ramster.params import ModuleParams, switch_text
from ramster.remote.handles import OriginTmem, origin_tmem
from ramster.tmem import TmemLimits
from ramster.tmem.quota import Quotas
from ramster.zcache import ZCache, ZcacheConfig


class Backend:
    """The switchable zcache backend of one node, with its module params."""

    def __init__(
        self,
        config: ZcacheConfig,
        limits: TmemLimits | None = None,
        params: ModuleParams | None = None,
        first_version: int = 1,
        recovering: bool = False,
    ) -> None:
        self.config = config
        self.limits = limits or TmemLimits()
        self.generation = 0
        self.params = params or ModuleParams()
        self.store: ZCache | None = None
        self.tmem: OriginTmem | None = None
        self._next_pool_uid = 1
        self.first_version = first_version
        self.recovering = recovering
        """Set while the node takes its pages back from peers: clients wait (UNAVAILABLE)."""
        self._identity_quotas = Quotas()
        """The quotas set for one identity each (their default is unused: `client_quota` is)."""
        if self.params.zcache:
            self._load()

    def __repr__(self) -> str:
        return (
            f"<Backend zcache={switch_text(self.zcache)} ramster={switch_text(self.ramster)} "
            f"generation={self.generation} store={self.store!r}>"
        )

    @property
    def zcache(self) -> bool:
        return self.tmem is not None

    @property
    def ramster(self) -> bool:
        return self.params.ramster

    @property
    def serving(self) -> bool:
        """Clients' Tmem calls are served: the backend is loaded and recovery is over."""
        return self.tmem is not None and not self.recovering

    def require(self) -> OriginTmem:
        """The backend for clients: UNAVAILABLE while recovering, then `loaded`."""
        if self.recovering:
            raise Unavailable(
                "the node is taking its pages back from its peers after a restart: retry shortly"
            )
        return self.loaded()

    def loaded(self) -> OriginTmem:
        """The loaded backend, or FAILED_PRECONDITION naming how to load it."""
        if self.tmem is None:
            raise FailedPrecondition(
                "the zcache backend is off on this node: turn it on with "
                "`ramster param set zcache on`"
            )
        return self.tmem

    def set_param(self, name: str, text: str) -> bool:
        """Set a module param; True if anything changed."""
        params = self.params.with_text(name, text)
        if params == self.params:
            return False
        if params.zcache != self.zcache:
            if params.zcache:
                self._load()
            else:
                self._unload()
        self.params = params
        self._hold_to_quotas()
        self._tune_dictionaries()
        return True

    def _tune_dictionaries(self) -> None:
        """The store's dictionaries follow the params dict_samples, dict_size, dict_drift."""
        if self.store is not None:
            shelf, params = self.store.dictionaries, self.params
            shelf.samples, shelf.size, shelf.drift = (
                params.dict_samples,
                params.dict_size,
                params.dict_drift,
            )

    @property
    def quotas(self) -> Quotas:
        """The quota of every identity: `client_quota`, or the one set for it."""
        return Quotas(self.params.client_quota, self._identity_quotas.by_identity)

    def set_quota(self, identity: str, nbytes: int) -> None:
        """Hold `identity` (``role:name``, checked by the caller) to `nbytes` (0: no quota)."""
        self._identity_quotas = self._identity_quotas.with_quota(identity, nbytes)
        self._hold_to_quotas()

    def unset_quota(self, identity: str) -> bool:
        """Hold `identity` to `client_quota` again; False if it had no quota of its own."""
        if identity not in self._identity_quotas.by_identity:
            return False
        self._identity_quotas = self._identity_quotas.without(identity)
        self._hold_to_quotas()
        return True

    def _hold_to_quotas(self) -> None:
        if self.tmem is not None:
            self.tmem.table.accounts.configure(self.quotas)

    def counters(self) -> dict[str, int]:
        if self.tmem is None or self.store is None:
            return {}
        return {**self.store.counters(), **self.tmem.counters()}

    def _load(self) -> None:
        self.store = ZCache(self.config)
        self.tmem = origin_tmem(
            self.store,
            self.limits,
            first_pool_uid=self._next_pool_uid,
            first_version=self.first_version,
        )
        self.generation += 1
        self._hold_to_quotas()
        self._tune_dictionaries()

    def _unload(self) -> None:
        assert self.store is not None and self.tmem is not None
        counters = self.tmem.counters()
        persistent = self.store.stats.pers_zpages + counters["remote_pers_pages"]
        if persistent:
            raise FailedPrecondition(
                f"zcache holds {persistent} persistent pages: they must be returned until "
                "flushed, so the backend stays on (flush or destroy their pools first)"
            )
        self._next_pool_uid = self.tmem.table.next_pool_uid
        self.first_version = self.tmem.table.next_version
        self.store = self.tmem = None
