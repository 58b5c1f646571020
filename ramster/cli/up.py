"""``ramster up``: a whole cluster on loopback for trying RAMster out, stopped by Ctrl-C.

It serves mTLS only and its etcd takes only its users (`LocalCluster`), so it prints the
``RAMSTER_TLS_*`` and ``RAMSTER_ETCD_*`` variables that let the ``ramster`` tools call its nodes
and its etcd as the cluster's admin.
"""

from __future__ import annotations

from typing import TextIO

from ramster.launcher import LocalCluster, wait_forever_until_signal
from ramster.units import format_size
from ramster.wire.tls import ENVIRONMENT


def run_up(nodes: int, memory: int, cluster: str, out: TextIO) -> int:
    with LocalCluster(nodes, [memory], cluster=cluster) as local:
        out.write(f"etcd      {local.etcd_url}\n")
        for node in local.nodes:
            out.write(
                f"node {node.number:<4} {node.name:<8} {node.address:<22} "
                f"{format_size(memory)}  pid {node.pid}  log {node.log}\n"
            )
        out.write(f"tls       {local.tls_dir} (the cluster's CA; only its certificates get in)\n")
        admin = local.admin_tls
        variables = {
            **{variable: getattr(admin, field) for field, variable in ENVIRONMENT.items()},
            "RAMSTER_ETCD": local.etcd_url,
            **{f"RAMSTER_ETCD_{field.upper()}": getattr(admin, field) for field in ENVIRONMENT},
        }
        first = local.nodes[0].address
        out.write(
            "\nas the cluster's admin, in your shell:\n"
            + "".join(f"export {variable}={value}\n" for variable, value in variables.items())
            + f"\ntry:  ramster stats --node {first}\n"
            f"      ramster members --cluster {cluster}\n"
            "Ctrl-C stops everything.\n"
        )
        out.flush()
        wait_forever_until_signal()
        out.write("stopping...\n")
    out.write("stopped.\n")
    return 0
