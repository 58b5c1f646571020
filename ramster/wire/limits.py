"""What both ends of a RAMster call must agree on: batch and message sizes, the length of a
client name, and how an address is written.

Imports no gRPC, so a client's configuration can be checked without it. Not here: the checks of
a request the node makes with these limits (`ramster.rpc.convert`), page sizes (`ramster.page`).
"""

from __future__ import annotations

import ipaddress
import re

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


_HOST_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?$")
ADVERTISE_RULE = (
    "HOST:PORT ([IPV6]:PORT), or a host alone (an IP address, IPv6 bracketed or not, or a name) "
    "to be reached at the port the node listens on"
)


def split_advertise(address: str, field_name: str = "advertise") -> tuple[str, int | None]:
    """(host, port) of an address a node advertises to its peers, port None if `address` is a
    host alone: an IP address or a name, so that a manifest can pass a pod's IP as the
    downward API gives it (``fd00::5``: an IPv6 address without brackets never has a port)."""
    host = _host(address)
    if host is not None:
        return host, None
    text, _, port = address.rpartition(":")
    host = _host(text)
    unbracketed = host is not None and ":" in host and not text.startswith("[")
    if host is None or unbracketed or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument.field(field_name, address, ADVERTISE_RULE)
    return host, int(port)


def _host(text: str) -> str | None:
    """The host `text` names: an IP address (IPv6 bracketed or not) or a name; None if
    neither."""
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return text if _HOST_NAME.match(text) else None


def join_host_port(host: str, port: int) -> str:
    """``HOST:PORT`` of `host` and `port`, an IPv6 address in brackets (``[fd00::5]:7470``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def advertised(advertise: str | None, reached: str) -> str:
    """The address peers are told to reach a node at: `advertise` (`split_advertise`), with the
    port of `reached` (the TCP address the node bound for peers) if it names none; `reached`
    itself without `advertise`."""
    if advertise is None:
        return reached
    host, port = split_advertise(advertise)
    if port is None:
        _, port = split_host_port(reached, "listen")
    return join_host_port(host, port)
