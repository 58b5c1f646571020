"""Module params: the runtime switches that stand in for loading kernel modules (docs/design.md §3,
§5).

`ModuleParams` is one frozen value; `with_text` returns a changed copy or refuses bad text with a
message naming the param. Per node they are set through `Admin.SetParam` (``ramster param set``);
cluster-wide through etcd's ``params/`` (``ramster param set --cluster``), which every node
follows. Kernel names are kept where RAMster had them (`eph_remotify`, `pers_remotify`,
`remote_target`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

from ramster.errors import InvalidArgument, shown
from ramster.page import LZ4_CODEC, Codec, parse_codec
from ramster.units import parse_size
from ramster.zcache.dictionaries import DEFAULT_DRIFT, DEFAULT_SAMPLES, DEFAULT_SIZE

SWITCH_WORDS = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}

PARAM_DOCS = {
    "zcache": "the zcache backend: on serves Tmem calls; off refuses them (pools are dropped)",
    "ramster": "the remote layer: on ships pages to peers under pressure; off brings them home",
    "eph_remotify": "ship ephemeral (cleancache) pages to peers when short of memory",
    "pers_remotify": "ship persistent (frontswap) pages to peers when short of memory",
    "remote_target": "auto (peers by free capacity) or the node number to ship pages to",
    "persistent_copies": "nodes that must hold a persistent page before its put is acknowledged "
    "(1 or 2; fewer while fewer nodes are up)",
    "origin_grace": "seconds a node may be out of the cluster before the pages held for it and "
    "the flushes queued for it are dropped (default 3600)",
    "client_lease": "seconds an application client may go unseen before its ephemeral pools are "
    "destroyed (default 30; clients of the library keep theirs alive)",
    "client_grace": "seconds an application client may go unseen before its persistent pools are "
    "destroyed too (default 3600; a grace shorter than client_lease acts as the lease)",
    "client_quota": "bytes the pages of one client identity may take on this node, counted as "
    "handed over (0: no quota, the default); `ramster quota set` sets one identity's",
    "repair_rate": "pages per second at most that rebuilding lost second copies moves (default "
    "20000, `--repair-rate`)",
    "codec": "how new pools pack their pages unless they ask: lz4 (the fastest, the default), "
    "zstd or zstd:LEVEL (denser; LEVEL 1..19, default 1; `--codec`)",
    "dict_samples": "pages of a zstd pool sampled before a dictionary is trained on them (default "
    "2000)",
    "dict_size": "bytes of a trained zstd dictionary (default 32768)",
    "dict_drift": "percent the ratio of a zstd pool's pages may fall below what its dictionary "
    "reached on its samples before a new one is trained (default 10)",
    "read_timeout_ms": "milliseconds a remote get waits for a holder before it reads another copy "
    "instead (default 1000, `--read-timeout-ms`; a page with no other copy waits the peer call's "
    "deadline)",
    "lease_ttl": "seconds a node's etcd entry outlives its last renewal: how long a node that died "
    "unannounced still counts as up (default 3, `--lease-ttl`; renewed every third of it; a change "
    "moves the entry to a new lease at once; without etcd, how long a silent peer stays in view)",
    "recover_timeout": "seconds a starting node waits for its peers to list the pages they hold "
    "for it (default 60, `--recover-timeout`; read when recovery starts, so a cluster-wide value "
    "applies to every node that starts later)",
}

MAX_QUOTA = 1 << 50
"""A pebibyte (1024TiB): more than any node holds."""

MAX_PERSISTENT_COPIES = 2

MAX_SECONDS = 366 * 24 * 3600
"""A year: the longest of the params in seconds. Longer is a node or a client nobody will bring
back."""

MAX_REPAIR_RATE = 10_000_000
"""Pages a second: about 40 GB/s, more than any link a copy crosses."""

MAX_READ_TIMEOUT_MS = 60_000
REPAIR_RATE = 20000
"""`repair_rate` unless set: 4 KiB pages at about 80 MB/s."""
READ_TIMEOUT_MS = 1000
"""`read_timeout_ms` unless set."""
LEASE_TTL = 3
"""`lease_ttl` unless set."""
MAX_LEASE_TTL = 3600
"""etcd grants a lease of at most an hour here: longer would keep a dead node in view for it."""
RECOVER_TIMEOUT = 60
"""`recover_timeout` unless set."""

WHOLE_PARAMS = {
    "origin_grace": (1, MAX_SECONDS, f"whole seconds in 1..{MAX_SECONDS}"),
    "client_lease": (1, MAX_SECONDS, f"whole seconds in 1..{MAX_SECONDS}"),
    "client_grace": (1, MAX_SECONDS, f"whole seconds in 1..{MAX_SECONDS}"),
    "repair_rate": (1, MAX_REPAIR_RATE, f"whole pages per second in 1..{MAX_REPAIR_RATE}"),
    "read_timeout_ms": (
        1,
        MAX_READ_TIMEOUT_MS,
        f"whole milliseconds in 1..{MAX_READ_TIMEOUT_MS}",
    ),
    "lease_ttl": (1, MAX_LEASE_TTL, f"whole seconds in 1..{MAX_LEASE_TTL}"),
    "recover_timeout": (1, MAX_SECONDS, f"whole seconds in 1..{MAX_SECONDS}"),
    "dict_samples": (100, 100_000, "whole pages in 100..100000"),
    "dict_size": (4096, 1 << 20, "whole bytes in 4096..1048576"),
    "dict_drift": (1, 100, "a whole percent in 1..100"),
}
"""The params that are whole numbers: (lowest, highest, what a refusal says is expected)."""

MAX_NODE_NUMBER = (1 << 32) - 1
"""Node numbers travel as uint32."""

_DECIMAL = re.compile(r"[0-9]{1,20}")
"""ASCII digits only: `str.isdigit` also takes '²' (which `int` refuses) and `int` takes other
scripts' digits; the length bound keeps `int` away from its 4300-digit limit."""


def parse_decimal(name: str, text: str, low: int, high: int, expected: str) -> int:
    """`text` as a whole number in `low`..`high` for param `name`; else `InvalidArgument` saying
    `expected`."""
    word = text.strip()
    if not _DECIMAL.fullmatch(word) or not low <= int(word) <= high:
        raise InvalidArgument(f"param {name} value {shown(text)} is invalid: expected {expected}")
    return int(word)


def parse_switch(name: str, text: str) -> bool:
    """`text` as a switch value of param `name`: on/off, true/false or 1/0."""
    value = SWITCH_WORDS.get(text.strip().lower())
    if value is None:
        raise InvalidArgument(f"param {name} value {shown(text)} is invalid: expected on or off")
    return value


def parse_quota(text: str, field: str) -> int:
    """`text` as a quota in bytes (0: none) for `field`; else `InvalidArgument` naming it."""
    expected = "a size of at most 1024TiB such as 64MiB or 768Mi (0: no quota)"
    try:
        nbytes = parse_size(text, field)
    except InvalidArgument:
        raise InvalidArgument.field(field, text, expected) from None
    if nbytes > MAX_QUOTA:
        raise InvalidArgument.field(field, text, expected)
    return nbytes


def check_whole_param(name: str, value: int) -> int:
    """`value` if param `name` (of `WHOLE_PARAMS`) may take it, as a flag gives it; else
    `InvalidArgument` as `ModuleParams.with_text` says it."""
    low, high, expected = WHOLE_PARAMS[name]
    if type(value) is not int or not low <= value <= high:
        raise InvalidArgument(f"param {name} value {shown(value)} is invalid: expected {expected}")
    return value


def switch_text(value: bool) -> str:
    return "on" if value else "off"


@dataclass(frozen=True, slots=True)
class ModuleParams:
    """Every module param of a node (see PARAM_DOCS)."""

    zcache: bool = True
    ramster: bool = True
    eph_remotify: bool = True
    pers_remotify: bool = True
    remote_target: int | None = None
    persistent_copies: int = 2
    origin_grace: int = 3600
    client_lease: int = 30
    client_grace: int = 3600

    @property
    def persistent_grace(self) -> int:
        """Seconds an unseen client keeps its persistent pools: `client_grace`, or `client_lease`
        if that is longer (a client keeps nothing past its grace it would not keep past its
        lease)."""
        return max(self.client_lease, self.client_grace)

    client_quota: int = 0
    repair_rate: int = REPAIR_RATE
    read_timeout_ms: int = READ_TIMEOUT_MS
    lease_ttl: int = LEASE_TTL
    recover_timeout: int = RECOVER_TIMEOUT
    codec: Codec = LZ4_CODEC
    dict_samples: int = DEFAULT_SAMPLES
    dict_size: int = DEFAULT_SIZE
    dict_drift: int = DEFAULT_DRIFT

    def as_text(self) -> dict[str, str]:
        text = {
            f.name: switch_text(getattr(self, f.name))
            for f in fields(self)
            if isinstance(getattr(self, f.name), bool)
        }
        text["remote_target"] = "auto" if self.remote_target is None else str(self.remote_target)
        text["persistent_copies"] = str(self.persistent_copies)
        for name in WHOLE_PARAMS:
            text[name] = str(getattr(self, name))
        text["client_quota"] = str(self.client_quota)
        text["codec"] = str(self.codec)
        return text

    def with_text(self, name: str, text: str) -> ModuleParams:
        """A copy with param `name` set from `text`."""
        if name not in PARAM_DOCS:
            raise InvalidArgument(
                f"param {shown(name)} is unknown: expected one of {', '.join(sorted(PARAM_DOCS))}"
            )
        if name == "persistent_copies":
            copies = parse_decimal(name, text, 1, MAX_PERSISTENT_COPIES, "1 or 2")
            return replace(self, persistent_copies=copies)
        if name in WHOLE_PARAMS:
            value: dict[str, Any] = {name: parse_decimal(name, text, *WHOLE_PARAMS[name])}
            return replace(self, **value)
        if name == "client_quota":
            return replace(self, client_quota=parse_quota(text, f"param {name} value"))
        if name == "codec":
            return replace(self, codec=parse_codec(text, f"param {name} value"))
        if name != "remote_target":
            switch: dict[str, Any] = {name: parse_switch(name, text)}
            return replace(self, **switch)
        if text.strip().lower() == "auto":
            return replace(self, remote_target=None)
        expected = f"auto or a node number in 1..{MAX_NODE_NUMBER}"
        number = parse_decimal(name, text, 1, MAX_NODE_NUMBER, expected)
        return replace(self, remote_target=number)
