"""What both ends of a RAMster call must agree on: batch and message sizes, the length of a
client name, and how an address is written.

Imports no gRPC, so a client's configuration can be checked without it. Not here: the checks of
a request the node makes with these limits (`ramster.rpc.convert`), page sizes (`ramster.page`).
"""

from __future__ import annotations

from ramster.errors import InvalidArgument

MAX_BATCH = 1024
"""Pages (or keys, or oids) in one request: 1024 pages of 4 KiB fit a 4 MiB message."""

MAX_MESSAGE = 4 * 2**20 + 64 * 2**10
"""Bytes in one message, either way: a full batch of 1024 raw 4 KiB pages plus its framing."""

MAX_CLIENT_NAME = 256

MAX_RECOVER_EPOCHS = 64
"""Earlier epochs one Peer/Recover may adopt: a node restarted this often without its peers
handing its pages over takes back those of its latest 64 starts (older copies were long written
off by the repair of their peers)."""

MAX_OWNER_NAME = MAX_CLIENT_NAME + 72
"""Characters of a client name as a node keeps it, ``role:name/label`` (`ramster.rpc.
tmem_service.owner_of`): a role (at most 6), ':', an identity name (at most 63), '/', a label.
Peers keep it in the records of the pools they hold pages of."""


def check_client_name(name: object, field: str = "client", limit: int = MAX_CLIENT_NAME) -> str:
    """`name` if it is a client name both ends accept (of at most `limit` characters), else
    `InvalidArgument` naming `field`."""
    if not isinstance(name, str) or not 0 < len(name) <= limit:
        raise InvalidArgument.field(field, name, f"a non-empty name of at most {limit} characters")
    return name


MESSAGE_SIZE_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
)
"""The gRPC channel options that let a message of `MAX_MESSAGE` bytes through, either way."""

OWN_CONNECTIONS = (("grpc.use_local_subchannel_pool", 1),)
"""A channel connects on its own: by default gRPC's C core shares connections (subchannels)
between the channels of a process, with their reconnect backoff, so a new channel to a node that
just started could fail at once, UNAVAILABLE, because an older channel to the same address had
failed there before (grpc/grpc#17282)."""


def split_host_port(address: str, field_name: str) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT`` (IPv6 as ``[::1]:PORT``); port 0 means any free port."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument.field(field_name, address, "HOST:PORT with a port in 0..65535")
    return host.strip("[]"), int(port)
