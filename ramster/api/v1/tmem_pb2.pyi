from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PageEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAGE_ENCODING_UNSPECIFIED: _ClassVar[PageEncoding]
    PAGE_ENCODING_RAW: _ClassVar[PageEncoding]
    PAGE_ENCODING_LZ4: _ClassVar[PageEncoding]
    PAGE_ENCODING_SAME_FILLED: _ClassVar[PageEncoding]
    PAGE_ENCODING_SEALED: _ClassVar[PageEncoding]
    PAGE_ENCODING_ZSTD: _ClassVar[PageEncoding]

class PutStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUT_STATUS_UNSPECIFIED: _ClassVar[PutStatus]
    PUT_STATUS_STORED: _ClassVar[PutStatus]
    PUT_STATUS_COMPRESS_POOR: _ClassVar[PutStatus]
    PUT_STATUS_MEAN_COMPRESS_POOR: _ClassVar[PutStatus]
    PUT_STATUS_NO_SPACE: _ClassVar[PutStatus]
    PUT_STATUS_NO_REPLICA: _ClassVar[PutStatus]
    PUT_STATUS_QUOTA: _ClassVar[PutStatus]

class GetMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GET_MODE_UNSPECIFIED: _ClassVar[GetMode]
    GET_MODE_POOL_DEFAULT: _ClassVar[GetMode]
    GET_MODE_FREE: _ClassVar[GetMode]
    GET_MODE_KEEP: _ClassVar[GetMode]
PAGE_ENCODING_UNSPECIFIED: PageEncoding
PAGE_ENCODING_RAW: PageEncoding
PAGE_ENCODING_LZ4: PageEncoding
PAGE_ENCODING_SAME_FILLED: PageEncoding
PAGE_ENCODING_SEALED: PageEncoding
PAGE_ENCODING_ZSTD: PageEncoding
PUT_STATUS_UNSPECIFIED: PutStatus
PUT_STATUS_STORED: PutStatus
PUT_STATUS_COMPRESS_POOR: PutStatus
PUT_STATUS_MEAN_COMPRESS_POOR: PutStatus
PUT_STATUS_NO_SPACE: PutStatus
PUT_STATUS_NO_REPLICA: PutStatus
PUT_STATUS_QUOTA: PutStatus
GET_MODE_UNSPECIFIED: GetMode
GET_MODE_POOL_DEFAULT: GetMode
GET_MODE_FREE: GetMode
GET_MODE_KEEP: GetMode

class Oid(_message.Message):
    __slots__ = ("word0", "word1", "word2")
    WORD0_FIELD_NUMBER: _ClassVar[int]
    WORD1_FIELD_NUMBER: _ClassVar[int]
    WORD2_FIELD_NUMBER: _ClassVar[int]
    word0: int
    word1: int
    word2: int
    def __init__(self, word0: _Optional[int] = ..., word1: _Optional[int] = ..., word2: _Optional[int] = ...) -> None: ...

class PageKey(_message.Message):
    __slots__ = ("oid", "index")
    OID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    oid: Oid
    index: int
    def __init__(self, oid: _Optional[_Union[Oid, _Mapping]] = ..., index: _Optional[int] = ...) -> None: ...

class Page(_message.Message):
    __slots__ = ("oid", "index", "data", "encoding", "length")
    OID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    oid: Oid
    index: int
    data: bytes
    encoding: PageEncoding
    length: int
    def __init__(self, oid: _Optional[_Union[Oid, _Mapping]] = ..., index: _Optional[int] = ..., data: _Optional[bytes] = ..., encoding: _Optional[_Union[PageEncoding, str]] = ..., length: _Optional[int] = ...) -> None: ...

class NewPoolRequest(_message.Message):
    __slots__ = ("client", "persistent", "shared_uuid", "page_size", "codec", "codec_level")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    PERSISTENT_FIELD_NUMBER: _ClassVar[int]
    SHARED_UUID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    CODEC_LEVEL_FIELD_NUMBER: _ClassVar[int]
    client: str
    persistent: bool
    shared_uuid: bytes
    page_size: int
    codec: str
    codec_level: int
    def __init__(self, client: _Optional[str] = ..., persistent: _Optional[bool] = ..., shared_uuid: _Optional[bytes] = ..., page_size: _Optional[int] = ..., codec: _Optional[str] = ..., codec_level: _Optional[int] = ...) -> None: ...

class NewPoolResponse(_message.Message):
    __slots__ = ("pool_id", "pool_uid", "codec", "codec_level")
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_UID_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    CODEC_LEVEL_FIELD_NUMBER: _ClassVar[int]
    pool_id: int
    pool_uid: int
    codec: str
    codec_level: int
    def __init__(self, pool_id: _Optional[int] = ..., pool_uid: _Optional[int] = ..., codec: _Optional[str] = ..., codec_level: _Optional[int] = ...) -> None: ...

class DestroyPoolRequest(_message.Message):
    __slots__ = ("client", "pool_id", "pool_uid")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_UID_FIELD_NUMBER: _ClassVar[int]
    client: str
    pool_id: int
    pool_uid: int
    def __init__(self, client: _Optional[str] = ..., pool_id: _Optional[int] = ..., pool_uid: _Optional[int] = ...) -> None: ...

class DestroyPoolResponse(_message.Message):
    __slots__ = ("pages_flushed",)
    PAGES_FLUSHED_FIELD_NUMBER: _ClassVar[int]
    pages_flushed: int
    def __init__(self, pages_flushed: _Optional[int] = ...) -> None: ...

class PutPagesRequest(_message.Message):
    __slots__ = ("client", "pool_id", "pages", "pool_uid")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    POOL_UID_FIELD_NUMBER: _ClassVar[int]
    client: str
    pool_id: int
    pages: _containers.RepeatedCompositeFieldContainer[Page]
    pool_uid: int
    def __init__(self, client: _Optional[str] = ..., pool_id: _Optional[int] = ..., pages: _Optional[_Iterable[_Union[Page, _Mapping]]] = ..., pool_uid: _Optional[int] = ...) -> None: ...

class PutPagesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedScalarFieldContainer[PutStatus]
    def __init__(self, results: _Optional[_Iterable[_Union[PutStatus, str]]] = ...) -> None: ...

class GetPagesRequest(_message.Message):
    __slots__ = ("client", "pool_id", "keys", "mode", "packed", "pool_uid")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    POOL_UID_FIELD_NUMBER: _ClassVar[int]
    client: str
    pool_id: int
    keys: _containers.RepeatedCompositeFieldContainer[PageKey]
    mode: GetMode
    packed: bool
    pool_uid: int
    def __init__(self, client: _Optional[str] = ..., pool_id: _Optional[int] = ..., keys: _Optional[_Iterable[_Union[PageKey, _Mapping]]] = ..., mode: _Optional[_Union[GetMode, str]] = ..., packed: _Optional[bool] = ..., pool_uid: _Optional[int] = ...) -> None: ...

class GetPagesResponse(_message.Message):
    __slots__ = ("found", "data", "encodings", "page_size")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    found: _containers.RepeatedScalarFieldContainer[bool]
    data: _containers.RepeatedScalarFieldContainer[bytes]
    encodings: _containers.RepeatedScalarFieldContainer[PageEncoding]
    page_size: int
    def __init__(self, found: _Optional[_Iterable[bool]] = ..., data: _Optional[_Iterable[bytes]] = ..., encodings: _Optional[_Iterable[_Union[PageEncoding, str]]] = ..., page_size: _Optional[int] = ...) -> None: ...

class KeyBatch(_message.Message):
    __slots__ = ("oid_word0", "oid_word1", "oid_word2", "indexes")
    OID_WORD0_FIELD_NUMBER: _ClassVar[int]
    OID_WORD1_FIELD_NUMBER: _ClassVar[int]
    OID_WORD2_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    oid_word0: _containers.RepeatedScalarFieldContainer[int]
    oid_word1: _containers.RepeatedScalarFieldContainer[int]
    oid_word2: _containers.RepeatedScalarFieldContainer[int]
    indexes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, oid_word0: _Optional[_Iterable[int]] = ..., oid_word1: _Optional[_Iterable[int]] = ..., oid_word2: _Optional[_Iterable[int]] = ..., indexes: _Optional[_Iterable[int]] = ...) -> None: ...

class PutPageBatchRequest(_message.Message):
    __slots__ = ("client", "pool_id", "pool_uid", "keys", "data", "lengths", "encodings", "page_lengths")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_UID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LENGTHS_FIELD_NUMBER: _ClassVar[int]
    ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    PAGE_LENGTHS_FIELD_NUMBER: _ClassVar[int]
    client: str
    pool_id: int
    pool_uid: int
    keys: KeyBatch
    data: bytes
    lengths: _containers.RepeatedScalarFieldContainer[int]
    encodings: _containers.RepeatedScalarFieldContainer[PageEncoding]
    page_lengths: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, client: _Optional[str] = ..., pool_id: _Optional[int] = ..., pool_uid: _Optional[int] = ..., keys: _Optional[_Union[KeyBatch, _Mapping]] = ..., data: _Optional[bytes] = ..., lengths: _Optional[_Iterable[int]] = ..., encodings: _Optional[_Iterable[_Union[PageEncoding, str]]] = ..., page_lengths: _Optional[_Iterable[int]] = ...) -> None: ...

class PutPageBatchResponse(_message.Message):
    __slots__ = ("results", "pack", "pack_dictionary")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    PACK_FIELD_NUMBER: _ClassVar[int]
    PACK_DICTIONARY_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedScalarFieldContainer[PutStatus]
    pack: bool
    pack_dictionary: int
    def __init__(self, results: _Optional[_Iterable[_Union[PutStatus, str]]] = ..., pack: _Optional[bool] = ..., pack_dictionary: _Optional[int] = ...) -> None: ...

class GetPageBatchRequest(_message.Message):
    __slots__ = ("client", "pool_id", "pool_uid", "keys", "mode", "dictionaries")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_UID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DICTIONARIES_FIELD_NUMBER: _ClassVar[int]
    client: str
    pool_id: int
    pool_uid: int
    keys: KeyBatch
    mode: GetMode
    dictionaries: bool
    def __init__(self, client: _Optional[str] = ..., pool_id: _Optional[int] = ..., pool_uid: _Optional[int] = ..., keys: _Optional[_Union[KeyBatch, _Mapping]] = ..., mode: _Optional[_Union[GetMode, str]] = ..., dictionaries: _Optional[bool] = ...) -> None: ...

class GetDictionaryRequest(_message.Message):
    __slots__ = ("client", "pool_id", "pool_uid", "dictionary")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_UID_FIELD_NUMBER: _ClassVar[int]
    DICTIONARY_FIELD_NUMBER: _ClassVar[int]
    client: str
    pool_id: int
    pool_uid: int
    dictionary: int
    def __init__(self, client: _Optional[str] = ..., pool_id: _Optional[int] = ..., pool_uid: _Optional[int] = ..., dictionary: _Optional[int] = ...) -> None: ...

class GetDictionaryResponse(_message.Message):
    __slots__ = ("dictionary",)
    DICTIONARY_FIELD_NUMBER: _ClassVar[int]
    dictionary: bytes
    def __init__(self, dictionary: _Optional[bytes] = ...) -> None: ...

class GetPageBatchResponse(_message.Message):
    __slots__ = ("data", "lengths", "encodings", "page_size")
    DATA_FIELD_NUMBER: _ClassVar[int]
    LENGTHS_FIELD_NUMBER: _ClassVar[int]
    ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    lengths: _containers.RepeatedScalarFieldContainer[int]
    encodings: _containers.RepeatedScalarFieldContainer[PageEncoding]
    page_size: int
    def __init__(self, data: _Optional[bytes] = ..., lengths: _Optional[_Iterable[int]] = ..., encodings: _Optional[_Iterable[_Union[PageEncoding, str]]] = ..., page_size: _Optional[int] = ...) -> None: ...

class FlushPagesRequest(_message.Message):
    __slots__ = ("client", "pool_id", "keys", "pool_uid")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    POOL_UID_FIELD_NUMBER: _ClassVar[int]
    client: str
    pool_id: int
    keys: _containers.RepeatedCompositeFieldContainer[PageKey]
    pool_uid: int
    def __init__(self, client: _Optional[str] = ..., pool_id: _Optional[int] = ..., keys: _Optional[_Iterable[_Union[PageKey, _Mapping]]] = ..., pool_uid: _Optional[int] = ...) -> None: ...

class FlushPagesResponse(_message.Message):
    __slots__ = ("flushed",)
    FLUSHED_FIELD_NUMBER: _ClassVar[int]
    flushed: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, flushed: _Optional[_Iterable[bool]] = ...) -> None: ...

class FlushObjectsRequest(_message.Message):
    __slots__ = ("client", "pool_id", "oids", "pool_uid")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    OIDS_FIELD_NUMBER: _ClassVar[int]
    POOL_UID_FIELD_NUMBER: _ClassVar[int]
    client: str
    pool_id: int
    oids: _containers.RepeatedCompositeFieldContainer[Oid]
    pool_uid: int
    def __init__(self, client: _Optional[str] = ..., pool_id: _Optional[int] = ..., oids: _Optional[_Iterable[_Union[Oid, _Mapping]]] = ..., pool_uid: _Optional[int] = ...) -> None: ...

class FlushObjectsResponse(_message.Message):
    __slots__ = ("flushed",)
    FLUSHED_FIELD_NUMBER: _ClassVar[int]
    flushed: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, flushed: _Optional[_Iterable[bool]] = ...) -> None: ...

class KeepAliveRequest(_message.Message):
    __slots__ = ("client",)
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    client: str
    def __init__(self, client: _Optional[str] = ...) -> None: ...

class KeepAliveResponse(_message.Message):
    __slots__ = ("lease_seconds", "grace_seconds")
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    lease_seconds: int
    grace_seconds: int
    def __init__(self, lease_seconds: _Optional[int] = ..., grace_seconds: _Optional[int] = ...) -> None: ...
