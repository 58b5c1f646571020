from ramster.api.v1 import tmem_pb2 as _tmem_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HelloRequest(_message.Message):
    __slots__ = ("cluster", "protocol_version", "node_name", "node_number", "epoch")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    protocol_version: int
    node_name: str
    node_number: int
    epoch: str
    def __init__(self, cluster: _Optional[str] = ..., protocol_version: _Optional[int] = ..., node_name: _Optional[str] = ..., node_number: _Optional[int] = ..., epoch: _Optional[str] = ...) -> None: ...

class HelloResponse(_message.Message):
    __slots__ = ("cluster", "protocol_version", "node_name", "node_number", "epoch", "address", "capacity_bytes", "free_bytes", "zcache", "ramster", "draining", "page_batches", "flush_batches", "sealed_puts_unchecked")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ZCACHE_FIELD_NUMBER: _ClassVar[int]
    RAMSTER_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    PAGE_BATCHES_FIELD_NUMBER: _ClassVar[int]
    FLUSH_BATCHES_FIELD_NUMBER: _ClassVar[int]
    SEALED_PUTS_UNCHECKED_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    protocol_version: int
    node_name: str
    node_number: int
    epoch: str
    address: str
    capacity_bytes: int
    free_bytes: int
    zcache: bool
    ramster: bool
    draining: bool
    page_batches: bool
    flush_batches: bool
    sealed_puts_unchecked: bool
    def __init__(self, cluster: _Optional[str] = ..., protocol_version: _Optional[int] = ..., node_name: _Optional[str] = ..., node_number: _Optional[int] = ..., epoch: _Optional[str] = ..., address: _Optional[str] = ..., capacity_bytes: _Optional[int] = ..., free_bytes: _Optional[int] = ..., zcache: _Optional[bool] = ..., ramster: _Optional[bool] = ..., draining: _Optional[bool] = ..., page_batches: _Optional[bool] = ..., flush_batches: _Optional[bool] = ..., sealed_puts_unchecked: _Optional[bool] = ...) -> None: ...

class Origin(_message.Message):
    __slots__ = ("node_number", "epoch")
    NODE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    node_number: int
    epoch: str
    def __init__(self, node_number: _Optional[int] = ..., epoch: _Optional[str] = ...) -> None: ...

class RemotePage(_message.Message):
    __slots__ = ("pool", "persistent", "oid", "index", "version", "data", "encoding", "page_size", "checksum")
    POOL_FIELD_NUMBER: _ClassVar[int]
    PERSISTENT_FIELD_NUMBER: _ClassVar[int]
    OID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    pool: int
    persistent: bool
    oid: _tmem_pb2.Oid
    index: int
    version: int
    data: bytes
    encoding: _tmem_pb2.PageEncoding
    page_size: int
    checksum: int
    def __init__(self, pool: _Optional[int] = ..., persistent: _Optional[bool] = ..., oid: _Optional[_Union[_tmem_pb2.Oid, _Mapping]] = ..., index: _Optional[int] = ..., version: _Optional[int] = ..., data: _Optional[bytes] = ..., encoding: _Optional[_Union[_tmem_pb2.PageEncoding, str]] = ..., page_size: _Optional[int] = ..., checksum: _Optional[int] = ...) -> None: ...

class PoolRecord(_message.Message):
    __slots__ = ("pool", "client", "pool_id", "persistent", "page_size", "shared_uuid", "codec", "codec_level")
    POOL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    PERSISTENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHARED_UUID_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    CODEC_LEVEL_FIELD_NUMBER: _ClassVar[int]
    pool: int
    client: str
    pool_id: int
    persistent: bool
    page_size: int
    shared_uuid: bytes
    codec: str
    codec_level: int
    def __init__(self, pool: _Optional[int] = ..., client: _Optional[str] = ..., pool_id: _Optional[int] = ..., persistent: _Optional[bool] = ..., page_size: _Optional[int] = ..., shared_uuid: _Optional[bytes] = ..., codec: _Optional[str] = ..., codec_level: _Optional[int] = ...) -> None: ...

class PeerPutRequest(_message.Message):
    __slots__ = ("origin", "pages", "pools", "holder_epoch")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    POOLS_FIELD_NUMBER: _ClassVar[int]
    HOLDER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    origin: Origin
    pages: _containers.RepeatedCompositeFieldContainer[RemotePage]
    pools: _containers.RepeatedCompositeFieldContainer[PoolRecord]
    holder_epoch: str
    def __init__(self, origin: _Optional[_Union[Origin, _Mapping]] = ..., pages: _Optional[_Iterable[_Union[RemotePage, _Mapping]]] = ..., pools: _Optional[_Iterable[_Union[PoolRecord, _Mapping]]] = ..., holder_epoch: _Optional[str] = ...) -> None: ...

class PeerPutResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedScalarFieldContainer[_tmem_pb2.PutStatus]
    def __init__(self, results: _Optional[_Iterable[_Union[_tmem_pb2.PutStatus, str]]] = ...) -> None: ...

class RemoteKey(_message.Message):
    __slots__ = ("pool", "oid", "index", "version")
    POOL_FIELD_NUMBER: _ClassVar[int]
    OID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    pool: int
    oid: _tmem_pb2.Oid
    index: int
    version: int
    def __init__(self, pool: _Optional[int] = ..., oid: _Optional[_Union[_tmem_pb2.Oid, _Mapping]] = ..., index: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class PeerGetRequest(_message.Message):
    __slots__ = ("origin", "keys")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    origin: Origin
    keys: _containers.RepeatedCompositeFieldContainer[RemoteKey]
    def __init__(self, origin: _Optional[_Union[Origin, _Mapping]] = ..., keys: _Optional[_Iterable[_Union[RemoteKey, _Mapping]]] = ...) -> None: ...

class PeerGetResponse(_message.Message):
    __slots__ = ("found", "data", "encodings", "versions", "checksums")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CHECKSUMS_FIELD_NUMBER: _ClassVar[int]
    found: _containers.RepeatedScalarFieldContainer[bool]
    data: _containers.RepeatedScalarFieldContainer[bytes]
    encodings: _containers.RepeatedScalarFieldContainer[_tmem_pb2.PageEncoding]
    versions: _containers.RepeatedScalarFieldContainer[int]
    checksums: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, found: _Optional[_Iterable[bool]] = ..., data: _Optional[_Iterable[bytes]] = ..., encodings: _Optional[_Iterable[_Union[_tmem_pb2.PageEncoding, str]]] = ..., versions: _Optional[_Iterable[int]] = ..., checksums: _Optional[_Iterable[int]] = ...) -> None: ...

class PeerPutBatchRequest(_message.Message):
    __slots__ = ("origin", "holder_epoch", "pools", "keys", "pool_uids", "persistent", "versions", "encodings", "page_sizes", "checksums", "data", "lengths", "skip_checksums")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    HOLDER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    POOLS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    POOL_UIDS_FIELD_NUMBER: _ClassVar[int]
    PERSISTENT_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZES_FIELD_NUMBER: _ClassVar[int]
    CHECKSUMS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LENGTHS_FIELD_NUMBER: _ClassVar[int]
    SKIP_CHECKSUMS_FIELD_NUMBER: _ClassVar[int]
    origin: Origin
    holder_epoch: str
    pools: _containers.RepeatedCompositeFieldContainer[PoolRecord]
    keys: _tmem_pb2.KeyBatch
    pool_uids: _containers.RepeatedScalarFieldContainer[int]
    persistent: _containers.RepeatedScalarFieldContainer[bool]
    versions: _containers.RepeatedScalarFieldContainer[int]
    encodings: _containers.RepeatedScalarFieldContainer[_tmem_pb2.PageEncoding]
    page_sizes: _containers.RepeatedScalarFieldContainer[int]
    checksums: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    lengths: _containers.RepeatedScalarFieldContainer[int]
    skip_checksums: bool
    def __init__(self, origin: _Optional[_Union[Origin, _Mapping]] = ..., holder_epoch: _Optional[str] = ..., pools: _Optional[_Iterable[_Union[PoolRecord, _Mapping]]] = ..., keys: _Optional[_Union[_tmem_pb2.KeyBatch, _Mapping]] = ..., pool_uids: _Optional[_Iterable[int]] = ..., persistent: _Optional[_Iterable[bool]] = ..., versions: _Optional[_Iterable[int]] = ..., encodings: _Optional[_Iterable[_Union[_tmem_pb2.PageEncoding, str]]] = ..., page_sizes: _Optional[_Iterable[int]] = ..., checksums: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ..., lengths: _Optional[_Iterable[int]] = ..., skip_checksums: _Optional[bool] = ...) -> None: ...

class PeerPutBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedScalarFieldContainer[_tmem_pb2.PutStatus]
    def __init__(self, results: _Optional[_Iterable[_Union[_tmem_pb2.PutStatus, str]]] = ...) -> None: ...

class PeerGetBatchRequest(_message.Message):
    __slots__ = ("origin", "keys", "pool_uids", "skip_checksums")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    POOL_UIDS_FIELD_NUMBER: _ClassVar[int]
    SKIP_CHECKSUMS_FIELD_NUMBER: _ClassVar[int]
    origin: Origin
    keys: _tmem_pb2.KeyBatch
    pool_uids: _containers.RepeatedScalarFieldContainer[int]
    skip_checksums: bool
    def __init__(self, origin: _Optional[_Union[Origin, _Mapping]] = ..., keys: _Optional[_Union[_tmem_pb2.KeyBatch, _Mapping]] = ..., pool_uids: _Optional[_Iterable[int]] = ..., skip_checksums: _Optional[bool] = ...) -> None: ...

class PeerGetBatchResponse(_message.Message):
    __slots__ = ("data", "lengths", "encodings", "versions", "checksums")
    DATA_FIELD_NUMBER: _ClassVar[int]
    LENGTHS_FIELD_NUMBER: _ClassVar[int]
    ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CHECKSUMS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    lengths: _containers.RepeatedScalarFieldContainer[int]
    encodings: _containers.RepeatedScalarFieldContainer[_tmem_pb2.PageEncoding]
    versions: _containers.RepeatedScalarFieldContainer[int]
    checksums: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, data: _Optional[bytes] = ..., lengths: _Optional[_Iterable[int]] = ..., encodings: _Optional[_Iterable[_Union[_tmem_pb2.PageEncoding, str]]] = ..., versions: _Optional[_Iterable[int]] = ..., checksums: _Optional[_Iterable[int]] = ...) -> None: ...

class PeerFlushPagesRequest(_message.Message):
    __slots__ = ("origin", "keys")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    origin: Origin
    keys: _containers.RepeatedCompositeFieldContainer[RemoteKey]
    def __init__(self, origin: _Optional[_Union[Origin, _Mapping]] = ..., keys: _Optional[_Iterable[_Union[RemoteKey, _Mapping]]] = ...) -> None: ...

class PeerFlushPageBatchRequest(_message.Message):
    __slots__ = ("origin", "keys", "pool_uids", "versions")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    POOL_UIDS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    origin: Origin
    keys: _tmem_pb2.KeyBatch
    pool_uids: _containers.RepeatedScalarFieldContainer[int]
    versions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, origin: _Optional[_Union[Origin, _Mapping]] = ..., keys: _Optional[_Union[_tmem_pb2.KeyBatch, _Mapping]] = ..., pool_uids: _Optional[_Iterable[int]] = ..., versions: _Optional[_Iterable[int]] = ...) -> None: ...

class RemoteObject(_message.Message):
    __slots__ = ("pool", "oid", "version")
    POOL_FIELD_NUMBER: _ClassVar[int]
    OID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    pool: int
    oid: _tmem_pb2.Oid
    version: int
    def __init__(self, pool: _Optional[int] = ..., oid: _Optional[_Union[_tmem_pb2.Oid, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class PeerFlushObjectsRequest(_message.Message):
    __slots__ = ("origin", "objects")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    origin: Origin
    objects: _containers.RepeatedCompositeFieldContainer[RemoteObject]
    def __init__(self, origin: _Optional[_Union[Origin, _Mapping]] = ..., objects: _Optional[_Iterable[_Union[RemoteObject, _Mapping]]] = ...) -> None: ...

class PeerDestroyPoolsRequest(_message.Message):
    __slots__ = ("origin", "pools")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    POOLS_FIELD_NUMBER: _ClassVar[int]
    origin: Origin
    pools: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, origin: _Optional[_Union[Origin, _Mapping]] = ..., pools: _Optional[_Iterable[int]] = ...) -> None: ...

class PeerFlushResponse(_message.Message):
    __slots__ = ("flushed",)
    FLUSHED_FIELD_NUMBER: _ClassVar[int]
    flushed: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, flushed: _Optional[_Iterable[bool]] = ...) -> None: ...

class RecoverRequest(_message.Message):
    __slots__ = ("origin", "keep")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    origin: Origin
    keep: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, origin: _Optional[_Union[Origin, _Mapping]] = ..., keep: _Optional[_Iterable[str]] = ...) -> None: ...

class RecoverChunk(_message.Message):
    __slots__ = ("pools", "keys", "epochs")
    POOLS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[PoolRecord]
    keys: _containers.RepeatedCompositeFieldContainer[RemoteKey]
    epochs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pools: _Optional[_Iterable[_Union[PoolRecord, _Mapping]]] = ..., keys: _Optional[_Iterable[_Union[RemoteKey, _Mapping]]] = ..., epochs: _Optional[_Iterable[str]] = ...) -> None: ...

class ForgetRequest(_message.Message):
    __slots__ = ("origin",)
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    origin: Origin
    def __init__(self, origin: _Optional[_Union[Origin, _Mapping]] = ...) -> None: ...
