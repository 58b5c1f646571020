"""The command line's one-shot reads and writes of a cluster in etcd: ``ramster members``
(`list_members`), ``ramster param set --cluster`` (`write_param`) and ``ramster quota set|unset
--cluster`` (`write_quota`). Each opens a connection of its own and closes it: no lease, no
watch. Not here: a node's membership (`nodemanager.etcd`), how the commands draw (`ramster.cli`).
"""

from __future__ import annotations

import logging

from nodemanager.etcd_client import EtcdClient
from nodemanager.etcd_settings import EtcdCredentials
from nodemanager.keys import ClusterKeys, check_name
from nodemanager.model import MemberInfo
from nodemanager.view import ClusterView

log = logging.getLogger("nodemanager.membership")


async def list_members(
    endpoints: str,
    cluster: str = "ramster",
    timeout: float = 5.0,
    credentials: EtcdCredentials | None = None,
) -> list[MemberInfo]:
    """Every live member of `cluster`, by number, from etcd at `endpoints`
    (``http[s]://HOST:PORT``, comma-separated) shown `credentials`: one read of its prefix (for
    ``ramster members``); `Unavailable` if etcd does not answer."""
    keys = ClusterKeys(cluster)
    etcd = EtcdClient(endpoints, timeout, credentials)
    await etcd.open()
    try:
        _, entries = await etcd.get_prefix(keys.prefix)
    finally:
        await etcd.close()
    view = ClusterView(keys)
    for problem in view.load(entries):
        log.warning("ignored a malformed entry: %s", problem)
    return [view.members[number] for number in sorted(view.members)]


async def write_param(
    endpoints: str,
    cluster: str,
    name: str,
    value: str,
    timeout: float = 5.0,
    credentials: EtcdCredentials | None = None,
) -> None:
    """Set cluster-wide param `name` of `cluster` (``ramster param set --cluster``); every node
    watching applies it."""
    keys = ClusterKeys(cluster)
    check_name("param", name)
    await _write_once(endpoints, timeout, credentials, keys.param(name), value)


async def write_quota(
    endpoints: str,
    cluster: str,
    identity: str,
    nbytes: int | None,
    timeout: float = 5.0,
    credentials: EtcdCredentials | None = None,
) -> None:
    """Set the cluster-wide quota of client identity `identity` (checked by the caller) to
    `nbytes`, or unset it (None) (``ramster quota set|unset --cluster``); every node watching
    applies it."""
    key = ClusterKeys(cluster).quota(identity)
    value = None if nbytes is None else str(nbytes)
    await _write_once(endpoints, timeout, credentials, key, value)


async def _write_once(
    endpoints: str,
    timeout: float,
    credentials: EtcdCredentials | None,
    key: str,
    value: str | None,
) -> None:
    """Put `value` at `key` (delete it: None) over a connection of its own."""
    etcd = EtcdClient(endpoints, timeout, credentials)
    await etcd.open()
    try:
        if value is None:
            await etcd.delete([key])
        else:
            await etcd.put(key, value)
    finally:
        await etcd.close()
