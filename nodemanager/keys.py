"""Where membership lives in etcd and how a node's entry is written. Pure: no I/O.

Every key sits under ``/ramster/<cluster>/``:

- ``names/<name>`` → the node number claimed once for that name (decimal text, deleted only when
  the node is forgotten);
- ``next_number`` → the lowest number never handed out yet (decimal text; absent means 1);
- ``nodes/<number>`` → `MemberInfo` as JSON, bound to the node's lease;
- ``params/<name>`` → the value of a cluster-wide module param;
- ``quotas/<identity>`` → the cluster-wide quota of client identity ``role:name``, in bytes
  (decimal text; ``ramster quota set --cluster``); deleting it unsets the quota on every node;
- ``forgotten/<number>`` → the name of a node an operator decommissioned (``ramster forget-node``),
  under a lease of `origin_grace` seconds: every node drops what it keeps for that number now
  (after the grace every node would have anyway). Its ``names/<name>`` is deleted then: the
  number is retired, and a node started later under that name gets a new one.
- ``epochs/<number>/<epoch>`` → (empty) every epoch node `number` started under whose pages peers
  may still hold, in the order etcd created them: what a restarted node takes back (recovery
  trusts this record, not what peers claim). Deleted once peers handed the pages over. Not part
  of the view.
- ``dictionaries/<number>/<id>`` → a zstd dictionary node `number` trained on a persistent pool
  (JSON: the pool's uid and the dictionary, sealed under the node's page key if it has one),
  written before any page is packed with it and deleted with its pool: what a restarted node
  decodes its recovered pages with. ``dictionaries/<number>/next`` → the lowest dictionary id
  the node never used (decimal text): ids are never used twice. Not part of the view.

Not here: talking to etcd (`nodemanager.etcd`), the view built from these keys (`nodemanager.view`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from nodemanager.model import MemberInfo
from ramster.errors import InvalidArgument, shown

ROOT = "/ramster/"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
"""Cluster, param and client names, wherever they are given (flags, config, etcd, Admin calls)."""
NAME_RULE = "1-63 letters, digits, '.', '_' or '-', starting alnum"
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
"""Node names: as long as a Kubernetes node's (a DNS subdomain, 253 characters), which a node in
a DaemonSet is named after. Where a name has less room (a certificate's CN, the origin in a
sealed page's associated data) it goes `abbreviated`."""
NODE_NAME_RULE = "1-253 letters, digits, '.', '_' or '-', starting alnum"

EPOCH = re.compile("[0-9a-f]{16}")
"""An epoch as `new_epoch` makes it: the node's start in microseconds (13 hex digits) and 3
random hex digits."""
EPOCH_RULE = "16 lowercase hex digits (a node's start time in microseconds and 3 random ones)"

KeyKind = Literal["names", "nodes", "params", "quotas", "next_number", "forgotten"]


def check_name(field: str, value: str) -> str:
    """`value` if it is a valid cluster, node or param name, else `InvalidArgument`."""
    if not _NAME.match(value):
        raise InvalidArgument.field(field, value, NAME_RULE)
    return value


def check_node_name(field: str, value: str) -> str:
    """`value` if it is a valid node name, else `InvalidArgument`."""
    if not _NODE_NAME.match(value):
        raise InvalidArgument.field(field, value, NODE_NAME_RULE)
    return value


ABBREVIATION_DIGEST = 16
"""Hex digits of SHA-256 that end an abbreviated name (64 bits)."""


def abbreviated(name: str, room: int) -> str:
    """`name` if it has at most `room` characters (> `ABBREVIATION_DIGEST`), else its first
    characters, '~' and `ABBREVIATION_DIGEST` hex digits of its SHA-256, `room` in all. Never a
    name itself ('~' is in no name), and two names that share their first characters still
    differ: for a name that has to fit a field of `room` (a certificate's CN, 64)."""
    if len(name) <= room:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:ABBREVIATION_DIGEST]
    return f"{name[: room - ABBREVIATION_DIGEST - 1]}~{digest}"


def new_epoch(started_us: int) -> str:
    """An epoch for a node process started at `started_us` (microseconds since 1970): 16 hex
    digits, unique per start. Which epoch came before which is etcd's record (`epochs/`), not
    their order."""
    return f"{started_us:013x}{secrets.randbelow(1 << 12):03x}"


def check_epoch(epoch: str, field: str) -> str:
    """`epoch` if it has the form every node's epoch has; InvalidArgument naming `field` if not."""
    if EPOCH.fullmatch(epoch) is None:
        raise InvalidArgument.field(field, epoch, EPOCH_RULE)
    return epoch


@dataclass(frozen=True, slots=True)
class ClusterKeys:
    """The key layout of one cluster."""

    cluster: str

    def __post_init__(self) -> None:
        check_name("cluster", self.cluster)

    @property
    def prefix(self) -> str:
        return f"{ROOT}{self.cluster}/"

    @property
    def next_number(self) -> str:
        return f"{self.prefix}next_number"

    def name(self, name: str) -> str:
        return f"{self.prefix}names/{name}"

    def node(self, number: int) -> str:
        return f"{self.prefix}nodes/{number}"

    def param(self, name: str) -> str:
        return f"{self.prefix}params/{name}"

    def quota(self, identity: str) -> str:
        return f"{self.prefix}quotas/{identity}"

    def forgotten(self, number: int) -> str:
        return f"{self.prefix}forgotten/{number}"

    def epochs(self, number: int) -> str:
        """The folder of node `number`'s recorded epochs."""
        return f"{self.prefix}epochs/{number}/"

    def epoch(self, number: int, epoch: str) -> str:
        return f"{self.epochs(number)}{epoch}"

    def dictionaries(self, number: int) -> str:
        """The folder of node `number`'s persistent dictionaries."""
        return f"{self.prefix}dictionaries/{number}/"

    def dictionary(self, number: int, dict_id: int) -> str:
        return f"{self.dictionaries(number)}{dict_id}"

    def next_dictionary(self, number: int) -> str:
        return f"{self.dictionaries(number)}next"

    def classify(self, key: str) -> tuple[KeyKind, str] | None:
        """What `key` is, and the name or number after its folder; None for a foreign key."""
        if not key.startswith(self.prefix):
            return None
        rest = key[len(self.prefix) :]
        if rest == "next_number":
            return "next_number", ""
        folder, sep, leaf = rest.partition("/")
        if not sep or not leaf or "/" in leaf:
            return None
        if folder == "names":
            return "names", leaf
        if folder == "params":
            return "params", leaf
        if folder == "quotas":
            return "quotas", leaf
        # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
        if leaf.isascii() and leaf.isdigit():
            if folder == "nodes":
                return "nodes", leaf
            if folder == "forgotten":
                return "forgotten", leaf
        return None


_FIELDS: dict[str, type] = {
    "number": int,
    "name": str,
    "address": str,
    "epoch": str,
    "capacity_bytes": int,
    "free_bytes": int,
    "zcache": bool,
    "ramster": bool,
    "draining": bool,
}

_OPTIONAL = ("zcache", "ramster", "draining")
"""Fields an older node may not publish: the dataclass defaults apply."""


def encode_member(info: MemberInfo) -> str:
    """The JSON stored at ``nodes/<number>``: every field of `info`, keys sorted."""
    return json.dumps(dataclasses.asdict(info), sort_keys=True, separators=(",", ":"))


def decode_member(raw: bytes | str, number: int) -> MemberInfo:
    """The `MemberInfo` stored at ``nodes/<number>``; `InvalidArgument` naming the first bad field.

    Unknown fields are ignored (a newer node may publish more); ``zcache``, ``ramster`` and
    ``draining`` take the dataclass defaults when absent.
    """
    where = f"nodes/{number}"
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidArgument(f"{where} holds {shown(raw)}: expected a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"{where} holds {shown(raw)}: expected a JSON object")
    values: dict[str, object] = {}
    for field, kind in _FIELDS.items():
        if field not in data:
            if field in _OPTIONAL:
                continue
            raise InvalidArgument(f"{where} has no field {field!r}")
        value = data[field]
        # bool is an int in Python; a count given as true/false is still malformed.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidArgument.field(f"{where} field {field}", value, f"a JSON {kind.__name__}")
        values[field] = value
    if values["number"] != number:
        raise InvalidArgument.field(f"{where} field number", values["number"], f"{number}")
    return MemberInfo(**values)  # type: ignore[arg-type]
