"""Where etcd is and how a client proves itself to it: parsed and checked, with no etcd client.

`parse_endpoints` and `EtcdCredentials` are what the ``--etcd`` flags become; they are checked when
the command line is read, also where etcd's client (etcd3aio, the [node] extra) is not installed,
so that ``ramster members`` there says which extra it needs rather than failing on an import.
`EtcdCredentials` follows etcd's own conventions: over ``https://`` endpoints, the CA that signed
etcd's certificate (etcdctl's ``--cacert``) and either a client certificate (``--cert``/``--key``;
with etcd's ``--client-cert-auth`` its CN is the etcd user) or a user and password.

Not here: the calls (`nodemanager.etcd_client`, which builds the channel from these).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ramster.errors import InvalidArgument

ENDPOINT_RULE = "http://HOST:PORT or https://HOST:PORT"


def parse_endpoints(endpoints: str) -> list[str]:
    """``HOST:PORT`` of each of ``http://HOST:PORT[,http://HOST:PORT...]`` (or ``https://``, the
    same for all; scheme optional: http)."""
    return split_endpoints(endpoints)[1]


def split_endpoints(endpoints: str) -> tuple[bool, list[str]]:
    """Whether `endpoints` are https, and the ``HOST:PORT`` of each."""
    parsed, schemes = [], set()
    for item in endpoints.split(","):
        scheme, sep, address = item.strip().rpartition("://")
        host, colon, port = address.rstrip("/").rpartition(":")
        if (sep and scheme not in {"http", "https"}) or not colon or not host or not port.isdigit():
            raise InvalidArgument.field("etcd endpoint", item.strip(), ENDPOINT_RULE)
        parsed.append(f"{host}:{port}")
        schemes.add(scheme or "http")
    if len(schemes) > 1:
        raise InvalidArgument.field("etcd endpoints", endpoints, "all http:// or all https://")
    return schemes == {"https"}, parsed


@dataclass(frozen=True, slots=True)
class EtcdCredentials:
    """What a client shows etcd (see the module docstring). ca: the CA of etcd's certificate,
    needed for (and only with) https endpoints; cert and key: a client certificate of the CA etcd
    trusts (``--trusted-ca-file``), whose CN is the etcd user; user and password: an etcd user,
    instead of a certificate. Paths are checked to be readable files."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    user: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        for field in ("ca", "cert", "key"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, _readable(field, value))
        if (self.cert is None) != (self.key is None):
            raise InvalidArgument("etcd cert and etcd key go together: give both or neither")
        if self.cert is not None and self.ca is None:
            raise InvalidArgument("etcd cert needs etcd ca: a client certificate is for TLS")
        if (self.user is None) != (self.password is None):
            raise InvalidArgument("etcd user and etcd password go together: give both or neither")
        if self.user is not None and self.cert is not None:
            raise InvalidArgument(
                "etcd user and etcd cert both name the etcd user: give one of them"
            )

    def __repr__(self) -> str:  # never the password
        shown = {f: getattr(self, f) for f in ("ca", "cert", "key", "user")}
        return "<EtcdCredentials " + " ".join(f"{f}={v!s}" for f, v in shown.items() if v) + ">"


def _readable(field: str, value: str | os.PathLike[str]) -> Path:
    path = Path(value)
    if not path.is_file() or not os.access(path, os.R_OK):
        problem = "not a readable file" if path.exists() else "no such file"
        raise InvalidArgument(f"etcd {field} {str(path)!r} is invalid: {problem}")
    return path


def check_ttl(ttl: float, field: str = "ttl") -> float:
    """`ttl` if it is a lease's time to live etcd grants (seconds in 1..3600; etcd rounds it up
    to whole seconds, and to at least about 2 with its default election timeout), else
    `InvalidArgument` naming `field`."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 1.0 <= ttl <= 3600.0:
        raise InvalidArgument.field(field, ttl, TTL_RULE)
    return ttl


TTL_RULE = "seconds in 1..3600"
