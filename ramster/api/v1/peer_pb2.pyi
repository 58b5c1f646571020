from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class HelloRequest(_message.Message):
    __slots__ = ("cluster", "protocol_version", "node_name", "node_number")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    protocol_version: int
    node_name: str
    node_number: int
    def __init__(self, cluster: _Optional[str] = ..., protocol_version: _Optional[int] = ..., node_name: _Optional[str] = ..., node_number: _Optional[int] = ...) -> None: ...

class HelloResponse(_message.Message):
    __slots__ = ("cluster", "protocol_version", "node_name", "node_number")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    protocol_version: int
    node_name: str
    node_number: int
    def __init__(self, cluster: _Optional[str] = ..., protocol_version: _Optional[int] = ..., node_name: _Optional[str] = ..., node_number: _Optional[int] = ...) -> None: ...
