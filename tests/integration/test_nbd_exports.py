"""Exports of a real `ramster node --nbd` with real NBD clients: `ramster export` creates, lists
and deletes them; `nbdcopy` writes a mixed corpus and reads it back byte-exact (pages the store
refuses go to the spill); `qemu-io` writes in part, zeroes and discards; several connections at
once; a node without a spill answers a refused write ENOSPC and says why in its log; with two
copies, a write is acknowledged once a peer holds the second, and a restarted node's export,
created again, reads back every block from the peer's copies."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import stat
from pathlib import Path

import pytest

from nodemanager.cli import list_members
from ramster.client import SyncClient
from ramster.launcher import free_port
from ramster.nbd.protocol import Command, Errno, Reply
from tests.support.cluster import Cluster, text_page
from tests.support.etcd import EtcdProcess
from tests.support.nbd import RawClient, missing_tools, run_tool, run_tool_failing, uri
from tests.support.nodes import NodeFactory, NodeProcess, run_cli
from tests.support.processes import wait_for
from tests.support.tools import require


@pytest.fixture(autouse=True)
def _nbd_clients() -> None:
    require(f"NBD clients absent: {', '.join(missing_tools())}" if missing_tools() else None)


MIB = 1 << 20


def nbd_node(node_factory: NodeFactory, tmp_path: Path, *flags: str) -> tuple[NodeProcess, Path]:
    """A node serving NBD on a unix socket in `tmp_path`; the node and the socket."""
    socket_path = tmp_path / "nbd.sock"
    node = node_factory.start("n1", extra_flags=("--nbd", f"unix://{socket_path}", *flags))
    assert node.ready["nbd"] == [f"unix://{socket_path}"]
    return node, socket_path


def export(node: NodeProcess, *args: str) -> str:
    done = run_cli("export", *args, "--node", node.address)
    assert done.returncode == 0, done.stderr
    return done.stdout


def corpus(pages: int) -> bytes:
    """Random, zero, same-filled and compressible pages in turn, cut short of a whole page."""
    parts = []
    for n in range(pages):
        kind = n % 4
        if kind == 0:
            parts.append(os.urandom(4096))
        elif kind == 1:
            parts.append(bytes(4096))
        elif kind == 2:
            parts.append(bytes([n % 251 + 1]) * 4096)
        else:
            parts.append((b"page %6d " % n * 400)[:4096])
    return b"".join(parts)[: pages * 4096 - 1234]


def counters(node: NodeProcess) -> dict[str, int]:
    with SyncClient(node.address, "test") as client:
        return client.stats()


def test_export_create_list_delete_and_nbdinfo_lists_it(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    node, socket_path = nbd_node(node_factory, tmp_path)
    assert export(node, "create", "swap", "--size", "64MiB") == "export swap created: 64.0MiB\n"
    assert export(node, "list") == (
        "name      size   pages   spilled   owner      \n"
        + "─" * 46
        + "\nswap   64.0MiB       0         0   local:local\n"
    )
    listed = run_tool("nbdinfo", "--list", "--json", f"nbd+unix://?socket={socket_path}").stdout
    assert re.findall(r'"export-name": "(\w+)"', listed) == ["swap"]
    assert run_tool("nbdinfo", "--size", uri(socket_path, "swap")).stdout == f"{64 * MIB}\n"
    run_tool("qemu-io", "-f", "raw", "-c", "write -P 7 0 1M", uri(socket_path, "swap"))
    assert export(node, "delete", "swap") == "export swap deleted: 256 pages flushed\n"
    assert export(node, "list") == "no exports\n"
    refused = run_cli("export", "delete", "swap", "--node", node.address)
    assert (refused.returncode, refused.stderr) == (
        1,
        "ramster export: no export 'swap' of local:local on this node\n",
    )


def test_export_create_refuses_a_size_that_is_no_whole_page(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    node, _ = nbd_node(node_factory, tmp_path)
    refused = run_cli("export", "create", "swap", "--size", "5000", "--node", node.address)
    assert (refused.returncode, refused.stderr) == (
        2,
        "ramster export: size 5000 is invalid: expected a multiple of 4096 bytes in "
        "4096..17592186044416\n",
    )


def test_nbdcopy_writes_a_mixed_corpus_and_reads_it_back_byte_exact(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    node, socket_path = nbd_node(
        node_factory, tmp_path, "--nbd-spill", str(tmp_path / "spill"), "--nbd-spill-size", "8MiB"
    )
    export(node, "create", "disk", "--size", "16MiB")
    data = corpus(2048)
    source, back = tmp_path / "corpus", tmp_path / "back"
    source.write_bytes(data)
    run_tool("nbdcopy", "--connections=4", str(source), uri(socket_path, "disk"))
    run_tool("nbdcopy", uri(socket_path, "disk"), str(back))
    read = back.read_bytes()
    assert read[: len(data)] == data
    assert read[len(data) :] == bytes(16 * MIB - len(data))
    seen = counters(node)
    assert seen["nbd_spilled_pages"] == seen["nbd_store_refused"] == 512  # the random pages
    assert seen["nbd_spill_pages_max"] == 2048
    assert export(node, "list").splitlines()[2].split()[3] == "512"  # under the header's rule


def test_qemu_io_partial_writes_write_zeroes_and_discard_read_back(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    node, socket_path = nbd_node(node_factory, tmp_path)
    export(node, "create", "disk", "--size", "4MiB")
    target = uri(socket_path, "disk")
    run_tool(
        "qemu-io",
        "-f",
        "raw",
        *("-c", "write -P 0x11 0 64k"),
        *("-c", "write -P 0x22 1000 3000"),
        *("-c", "write -P 0x33 4000 200"),
        *("-c", "write -z 16k 12k"),
        *("-c", "write -z -u 32k 4k"),
        *("-c", "discard 40k 8k"),
        *("-c", "flush"),
        target,
    )
    run_tool(
        "qemu-io",
        "-f",
        "raw",
        *("-c", "read -P 0x11 0 1000"),
        *("-c", "read -P 0x22 1000 3000"),
        *("-c", "read -P 0x33 4000 200"),
        *("-c", "read -P 0x11 4200 12184"),
        *("-c", "read -P 0 16k 12k"),
        *("-c", "read -P 0x11 28k 4k"),
        *("-c", "read -P 0 32k 4k"),
        *("-c", "read -P 0x11 48k 16k"),
        target,
    )
    assert counters(node)["frontswap_failed_stores"] == 0


def test_several_connections_at_once_write_and_read_their_own_ranges(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    node, socket_path = nbd_node(node_factory, tmp_path)
    export(node, "create", "disk", "--size", "8MiB")
    target = uri(socket_path, "disk")

    def write_then_read(n: int) -> None:
        offset = n * 512 * 1024
        run_tool("qemu-io", "-f", "raw", "-c", f"write -P {n + 1} {offset} 512k", target)
        run_tool("qemu-io", "-f", "raw", "-c", f"read -P {n + 1} {offset} 512k", target)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(write_then_read, range(8)))
    assert counters(node)["frontswap_succ_stores"] == 8 * 128


def test_without_a_spill_a_refused_write_is_enospc_and_the_log_says_why(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    node, socket_path = nbd_node(node_factory, tmp_path)
    export(node, "create", "disk", "--size", "1MiB")
    random = tmp_path / "random"
    random.write_bytes(os.urandom(4096))
    failed = run_tool_failing("nbdcopy", str(random), uri(socket_path, "disk"))
    assert "No space left on device" in failed
    assert (
        "NBD WRITE refused: the store refused 1 pages (page 0: compress_poor) and the node has "
        "no spill (--nbd-spill)" in node.log()
    )


def test_with_two_copies_a_peer_holds_every_block_and_an_export_outlives_its_nodes_restart(
    node_factory: NodeFactory, etcd: EtcdProcess, etcd_cluster: str, tmp_path: Path
) -> None:
    cluster = Cluster(node_factory, etcd.url, etcd_cluster, copies=2)
    socket_path = tmp_path / "nbd.sock"
    try:
        node_a = cluster.start(
            "A",
            "32MiB",
            listen=f"127.0.0.1:{free_port()}",
            flags=("--nbd", f"unix://{socket_path}"),
        )
        export(node_a, "create", "disk", "--size", "8MiB")
        data = b"".join(text_page(n) for n in range(1024))
        source, back = tmp_path / "source", tmp_path / "back"
        source.write_bytes(data)

        cluster.start("B", "64MiB")
        members = lambda: sorted(m.name for m in asyncio.run(list_members(etcd.url, etcd_cluster)))  # noqa: E731
        wait_for(lambda: members() == ["A", "B"], what="A and B in the view")
        # A FLUSH (nbdcopy's last request) returns once every write before it has its copy.
        run_tool("nbdcopy", "--flush", str(source), uri(socket_path, "disk"))
        assert cluster.stats("B")["foreign_pers_pages"] == 1024

        first_epoch = node_a.ready["epoch"]
        node_a.kill()
        wait_for(lambda: members() == ["B"], what="A out of the view")
        node_a.start()
        export(node_a, "create", "disk", "--size", "8MiB")  # claims the recovered pool
        run_tool("nbdcopy", uri(socket_path, "disk"), str(back))
        assert back.read_bytes() == data + bytes(4 * MIB)
        assert node_a.ready["epoch"] != first_epoch
    finally:
        cluster.close()


def test_malformed_requests_to_a_real_node_are_answered_and_it_serves_on(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    node, socket_path = nbd_node(node_factory, tmp_path)
    export(node, "create", "disk", "--size", "1MiB")
    raw = RawClient(socket_path)
    raw.greet()
    assert raw.go("disk")[-1].reply == Reply.ACK
    raw.request(Command.READ, MIB - 4096, 8192, cookie=1)
    raw.request(Command.WRITE, MIB, 1, b"x", cookie=2)
    raw.request(77, cookie=3)
    raw.request(Command.READ, 0, (32 << 20) + 1, cookie=4)
    raw.request(Command.WRITE, 0, 5, b"hello", cookie=5)
    answers = [raw.reply() for _ in range(5)]
    assert sorted(answers) == [
        (0, 5, b""),
        (Errno.EINVAL, 1, b""),
        (Errno.EINVAL, 3, b""),
        (Errno.EINVAL, 4, b""),
        (Errno.ENOSPC, 2, b""),
    ]
    raw.request(Command.READ, 0, 5, cookie=6)  # after the write's answer: ordered
    assert raw.reply(5) == (0, 6, b"hello")
    raw.request(Command.READ, 0, 5, magic=0)
    assert raw.closed_by_server()
    raw.close()
    assert run_tool("nbdinfo", "--size", uri(socket_path, "disk")).stdout == f"{MIB}\n"


def test_the_nbd_socket_is_the_node_users_only_whatever_the_client_sockets_mode(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    """An NBD client proves nothing and reaches every export: not a socket for applications."""
    client_socket = tmp_path / "client.sock"
    _, nbd = nbd_node(
        node_factory, tmp_path, "--listen", f"unix://{client_socket}", "--socket-mode", "0666"
    )
    assert stat.S_IMODE(client_socket.stat().st_mode) == 0o666
    assert stat.S_IMODE(nbd.stat().st_mode) == 0o600
