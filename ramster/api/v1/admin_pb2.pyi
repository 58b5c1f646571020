from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeState(_message.Message):
    __slots__ = ("node_name", "epoch", "backend_generation", "zcache", "ramster", "shutting_down")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    BACKEND_GENERATION_FIELD_NUMBER: _ClassVar[int]
    ZCACHE_FIELD_NUMBER: _ClassVar[int]
    RAMSTER_FIELD_NUMBER: _ClassVar[int]
    SHUTTING_DOWN_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    epoch: str
    backend_generation: int
    zcache: bool
    ramster: bool
    shutting_down: bool
    def __init__(self, node_name: _Optional[str] = ..., epoch: _Optional[str] = ..., backend_generation: _Optional[int] = ..., zcache: _Optional[bool] = ..., ramster: _Optional[bool] = ..., shutting_down: _Optional[bool] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("state", "counters")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    state: NodeState
    counters: _containers.ScalarMap[str, int]
    def __init__(self, state: _Optional[_Union[NodeState, _Mapping]] = ..., counters: _Optional[_Mapping[str, int]] = ...) -> None: ...

class GetParamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetParamsResponse(_message.Message):
    __slots__ = ("params",)
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    params: _containers.ScalarMap[str, str]
    def __init__(self, params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SetParamRequest(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SetParamResponse(_message.Message):
    __slots__ = ("params",)
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    params: _containers.ScalarMap[str, str]
    def __init__(self, params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WatchStateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("timeout_seconds",)
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    timeout_seconds: float
    def __init__(self, timeout_seconds: _Optional[float] = ...) -> None: ...

class DrainResponse(_message.Message):
    __slots__ = ("drained", "pages_left")
    DRAINED_FIELD_NUMBER: _ClassVar[int]
    PAGES_LEFT_FIELD_NUMBER: _ClassVar[int]
    drained: bool
    pages_left: int
    def __init__(self, drained: _Optional[bool] = ..., pages_left: _Optional[int] = ...) -> None: ...

class ForgetNodeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ForgetNodeResponse(_message.Message):
    __slots__ = ("node_number",)
    NODE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    node_number: int
    def __init__(self, node_number: _Optional[int] = ...) -> None: ...

class UndrainRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UndrainResponse(_message.Message):
    __slots__ = ("was_draining",)
    WAS_DRAINING_FIELD_NUMBER: _ClassVar[int]
    was_draining: bool
    def __init__(self, was_draining: _Optional[bool] = ...) -> None: ...

class Quotas(_message.Message):
    __slots__ = ("client_quota_bytes", "identity_bytes")
    class IdentityBytesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CLIENT_QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    client_quota_bytes: int
    identity_bytes: _containers.ScalarMap[str, int]
    def __init__(self, client_quota_bytes: _Optional[int] = ..., identity_bytes: _Optional[_Mapping[str, int]] = ...) -> None: ...

class SetQuotaRequest(_message.Message):
    __slots__ = ("identity", "quota_bytes")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    identity: str
    quota_bytes: int
    def __init__(self, identity: _Optional[str] = ..., quota_bytes: _Optional[int] = ...) -> None: ...

class SetQuotaResponse(_message.Message):
    __slots__ = ("quotas",)
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    quotas: Quotas
    def __init__(self, quotas: _Optional[_Union[Quotas, _Mapping]] = ...) -> None: ...

class UnsetQuotaRequest(_message.Message):
    __slots__ = ("identity",)
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    identity: str
    def __init__(self, identity: _Optional[str] = ...) -> None: ...

class UnsetQuotaResponse(_message.Message):
    __slots__ = ("was_set", "quotas")
    WAS_SET_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    was_set: bool
    quotas: Quotas
    def __init__(self, was_set: _Optional[bool] = ..., quotas: _Optional[_Union[Quotas, _Mapping]] = ...) -> None: ...

class GetQuotasRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetQuotasResponse(_message.Message):
    __slots__ = ("quotas",)
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    quotas: Quotas
    def __init__(self, quotas: _Optional[_Union[Quotas, _Mapping]] = ...) -> None: ...

class GetClientsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClientUsage(_message.Message):
    __slots__ = ("identity", "pages", "bytes", "quota_bytes", "puts_refused")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    PUTS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    identity: str
    pages: int
    bytes: int
    quota_bytes: int
    puts_refused: int
    def __init__(self, identity: _Optional[str] = ..., pages: _Optional[int] = ..., bytes: _Optional[int] = ..., quota_bytes: _Optional[int] = ..., puts_refused: _Optional[int] = ...) -> None: ...

class GetClientsResponse(_message.Message):
    __slots__ = ("clients",)
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    clients: _containers.RepeatedCompositeFieldContainer[ClientUsage]
    def __init__(self, clients: _Optional[_Iterable[_Union[ClientUsage, _Mapping]]] = ...) -> None: ...

class Export(_message.Message):
    __slots__ = ("name", "owner", "size", "pages", "spilled_pages")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    SPILLED_PAGES_FIELD_NUMBER: _ClassVar[int]
    name: str
    owner: str
    size: int
    pages: int
    spilled_pages: int
    def __init__(self, name: _Optional[str] = ..., owner: _Optional[str] = ..., size: _Optional[int] = ..., pages: _Optional[int] = ..., spilled_pages: _Optional[int] = ...) -> None: ...

class CreateExportRequest(_message.Message):
    __slots__ = ("name", "size", "codec", "codec_level")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    CODEC_LEVEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    codec: str
    codec_level: int
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., codec: _Optional[str] = ..., codec_level: _Optional[int] = ...) -> None: ...

class CreateExportResponse(_message.Message):
    __slots__ = ("export",)
    EXPORT_FIELD_NUMBER: _ClassVar[int]
    export: Export
    def __init__(self, export: _Optional[_Union[Export, _Mapping]] = ...) -> None: ...

class ListExportsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListExportsResponse(_message.Message):
    __slots__ = ("exports",)
    EXPORTS_FIELD_NUMBER: _ClassVar[int]
    exports: _containers.RepeatedCompositeFieldContainer[Export]
    def __init__(self, exports: _Optional[_Iterable[_Union[Export, _Mapping]]] = ...) -> None: ...

class DeleteExportRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteExportResponse(_message.Message):
    __slots__ = ("pages_flushed",)
    PAGES_FLUSHED_FIELD_NUMBER: _ClassVar[int]
    pages_flushed: int
    def __init__(self, pages_flushed: _Optional[int] = ...) -> None: ...
