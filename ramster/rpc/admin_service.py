"""The `Admin` service: stats, module params and the state stream operators and frontends use,
and the quotas of client identities with what their pages take (`ramster.tmem.quota`), and
the node's NBD exports (`ramster.nbd.exports`), each the caller's identity's.

Every change (param set, quota set and unset, drain, undrain, forget-node, export create
and delete) is logged, before it is made, with who asked for it
(`ramster.rpc.access.current_caller`); who may ask is
`ramster.rpc.access`'s rule.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ramster.api.v1 import admin_pb2
from ramster.backend import Backend
from ramster.errors import InvalidArgument, shown
from ramster.nbd.exports import NodeExports
from ramster.params import MAX_QUOTA
from ramster.rpc.access import current_caller
from ramster.rpc.binding import server_stream, service, unary
from ramster.rpc.convert import pool_codec
from ramster.state import StateFeed
from ramster.trust.identity import owner_identity
from ramster.wire.messages import (
    export_message,
    node_state_message,
    quotas_message,
    usage_message,
)

log = logging.getLogger("ramster.node")

SERVICE = "ramster.api.v1.Admin"

MAX_DRAIN_SECONDS = 3600


class AdminService:
    """Serves `Admin` for one node: `counters` collects every counter at call time."""

    def __init__(
        self,
        backend: Backend,
        feed: StateFeed,
        counters: Callable[[], dict[str, int]],
        set_param: Callable[[str, str], Awaitable[dict[str, str]]],
        drain: Callable[[float | None], Awaitable[int]],
        forget_node: Callable[[str], Awaitable[int]],
        undrain: Callable[[], Awaitable[bool]],
        exports: NodeExports,
    ) -> None:
        self._backend = backend
        self._feed = feed
        self._counters = counters
        self._set_param = set_param
        self._drain = drain
        self._forget_node = forget_node
        self._undrain = undrain
        self._exports = exports

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return service(
            SERVICE,
            {
                "GetStats": unary(
                    "Admin/GetStats", self.get_stats, admin_pb2.GetStatsRequest.FromString
                ),
                "GetParams": unary(
                    "Admin/GetParams", self.get_params, admin_pb2.GetParamsRequest.FromString
                ),
                "SetParam": unary(
                    "Admin/SetParam", self.set_param, admin_pb2.SetParamRequest.FromString
                ),
                "WatchState": server_stream(
                    "Admin/WatchState", self.watch_state, admin_pb2.WatchStateRequest.FromString
                ),
                "Drain": unary("Admin/Drain", self.drain, admin_pb2.DrainRequest.FromString),
                "ForgetNode": unary(
                    "Admin/ForgetNode", self.forget_node, admin_pb2.ForgetNodeRequest.FromString
                ),
                "Undrain": unary(
                    "Admin/Undrain", self.undrain, admin_pb2.UndrainRequest.FromString
                ),
                "SetQuota": unary(
                    "Admin/SetQuota", self.set_quota, admin_pb2.SetQuotaRequest.FromString
                ),
                "UnsetQuota": unary(
                    "Admin/UnsetQuota", self.unset_quota, admin_pb2.UnsetQuotaRequest.FromString
                ),
                "GetQuotas": unary(
                    "Admin/GetQuotas", self.get_quotas, admin_pb2.GetQuotasRequest.FromString
                ),
                "GetClients": unary(
                    "Admin/GetClients", self.get_clients, admin_pb2.GetClientsRequest.FromString
                ),
                "CreateExport": unary(
                    "Admin/CreateExport",
                    self.create_export,
                    admin_pb2.CreateExportRequest.FromString,
                ),
                "ListExports": unary(
                    "Admin/ListExports", self.list_exports, admin_pb2.ListExportsRequest.FromString
                ),
                "DeleteExport": unary(
                    "Admin/DeleteExport",
                    self.delete_export,
                    admin_pb2.DeleteExportRequest.FromString,
                ),
            },
        )

    async def drain(self, request: admin_pb2.DrainRequest) -> admin_pb2.DrainResponse:
        timeout = request.timeout_seconds
        if not 0 <= timeout <= MAX_DRAIN_SECONDS:  # also refuses NaN
            raise InvalidArgument.field(
                "timeout_seconds", timeout, f"seconds in 0..{MAX_DRAIN_SECONDS} (0: the node's)"
            )
        _log_change(f"drain ({f'{timeout:g} s' if timeout else 'the node timeout'})")
        left = await self._drain(timeout or None)
        return admin_pb2.DrainResponse(drained=not left, pages_left=left)

    async def get_stats(self, request: admin_pb2.GetStatsRequest) -> admin_pb2.GetStatsResponse:
        return admin_pb2.GetStatsResponse(
            state=node_state_message(self._feed.status), counters=self._counters()
        )

    async def get_params(self, request: admin_pb2.GetParamsRequest) -> admin_pb2.GetParamsResponse:
        return admin_pb2.GetParamsResponse(params=self._backend.params.as_text())

    async def set_param(self, request: admin_pb2.SetParamRequest) -> admin_pb2.SetParamResponse:
        _log_change(f"param {shown(request.name)} set to {shown(request.value)}")
        return admin_pb2.SetParamResponse(params=await self._set_param(request.name, request.value))

    async def watch_state(
        self, request: admin_pb2.WatchStateRequest
    ) -> AsyncIterator[admin_pb2.NodeState]:
        async for status in self._feed.watch():
            yield node_state_message(status)

    async def forget_node(
        self, request: admin_pb2.ForgetNodeRequest
    ) -> admin_pb2.ForgetNodeResponse:
        _log_change(f"forget-node {shown(request.name)}")
        return admin_pb2.ForgetNodeResponse(node_number=await self._forget_node(request.name))

    async def undrain(self, request: admin_pb2.UndrainRequest) -> admin_pb2.UndrainResponse:
        _log_change("undrain")
        return admin_pb2.UndrainResponse(was_draining=await self._undrain())

    async def set_quota(self, request: admin_pb2.SetQuotaRequest) -> admin_pb2.SetQuotaResponse:
        identity = str(owner_identity(request.identity))
        if request.quota_bytes > MAX_QUOTA:
            raise InvalidArgument.field(
                "quota_bytes", request.quota_bytes, f"at most {MAX_QUOTA} (1024TiB; 0: no quota)"
            )
        _log_change(f"quota of {identity} set to {request.quota_bytes} bytes")
        self._backend.set_quota(identity, request.quota_bytes)
        return admin_pb2.SetQuotaResponse(quotas=quotas_message(self._backend.quotas))

    async def unset_quota(
        self, request: admin_pb2.UnsetQuotaRequest
    ) -> admin_pb2.UnsetQuotaResponse:
        identity = str(owner_identity(request.identity))
        _log_change(f"quota of {identity} unset")
        was_set = self._backend.unset_quota(identity)
        return admin_pb2.UnsetQuotaResponse(
            was_set=was_set, quotas=quotas_message(self._backend.quotas)
        )

    async def get_quotas(self, request: admin_pb2.GetQuotasRequest) -> admin_pb2.GetQuotasResponse:
        return admin_pb2.GetQuotasResponse(quotas=quotas_message(self._backend.quotas))

    async def get_clients(
        self, request: admin_pb2.GetClientsRequest
    ) -> admin_pb2.GetClientsResponse:
        tmem = self._backend.tmem  # none loaded: no pools, nobody uses anything
        usage = tmem.table.accounts.usage() if tmem is not None else []
        return admin_pb2.GetClientsResponse(clients=[usage_message(line) for line in usage])

    async def create_export(
        self, request: admin_pb2.CreateExportRequest
    ) -> admin_pb2.CreateExportResponse:
        self._backend.require()
        _log_change(f"export create {shown(request.name)} of {request.size} bytes")
        codec = pool_codec(request.codec, request.codec_level, self._backend.params.codec)
        status = self._exports.create(
            request.name, request.size, str(current_caller().identity), codec
        )
        return admin_pb2.CreateExportResponse(export=export_message(status))

    async def list_exports(
        self, request: admin_pb2.ListExportsRequest
    ) -> admin_pb2.ListExportsResponse:
        self._backend.require()
        statuses = self._exports.statuses(str(current_caller().identity))
        return admin_pb2.ListExportsResponse(exports=[export_message(s) for s in statuses])

    async def delete_export(
        self, request: admin_pb2.DeleteExportRequest
    ) -> admin_pb2.DeleteExportResponse:
        self._backend.require()
        _log_change(f"export delete {shown(request.name)}")
        flushed = self._exports.delete(request.name, str(current_caller().identity))
        return admin_pb2.DeleteExportResponse(pages_flushed=flushed)


def _log_change(change: str) -> None:
    log.info("%s by %s", change, current_caller())
