"""A `ramster node` process from start to stop, as an operator sees it: the graceful stop on
SIGTERM, a unix-socket listener, several listeners at once, the Prometheus endpoint, addresses
another process holds, and the state stream across a backend reload and a restart. Bad flags and
variables: test_cli.py."""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import signal
import socket
import subprocess
import time
import zlib
from pathlib import Path

import grpc
import lz4.block
import pytest

from ramster.api.v1 import admin_pb2, peer_pb2, tmem_pb2
from ramster.client import Client, NodeState, SyncClient
from tests.support.nodes import RAMSTER, NodeFactory
from tests.support.processes import free_port
from tests.support.tools import require_tool
from tests.support.wire import RawNode

GRACE = 5.0
LZ4 = tmem_pb2.PAGE_ENCODING_LZ4


def page(n: int, size: int = 4096) -> bytes:
    """A distinct, compressible page."""
    return (f"page {n:9d} ".encode() * (size // 15 + 1))[:size]


def http_get(address: str, path: str) -> tuple[int, str, str]:
    """(status, Content-Type, body) of ``GET path`` at ``HOST:PORT``."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        connection.close()


def run_node_cli(*flags: str) -> subprocess.CompletedProcess[str]:
    """`ramster node` with `flags`, expected to refuse them and exit at once."""
    argv = [RAMSTER, "node", "--listen", "127.0.0.1:0", "--memory", "64MiB", *flags]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_sigterm_lets_calls_in_flight_finish_and_exits_0_within_the_grace(
    node_factory: NodeFactory,
) -> None:
    node = node_factory.start("n1", extra_flags=("--grace", str(GRACE)))
    assert node.process is not None
    pid = node.process.pid
    batch = 512  # ~4 ms of work per 100 pages: calls take a while, so some are always in flight

    signalled = 0.0

    async def scenario() -> tuple[list[list[tuple[str, float]]], list[admin_pb2.NodeState], str]:
        nonlocal signalled
        async with grpc.aio.insecure_channel(node.address) as channel:
            new_pool = channel.unary_unary(
                "/ramster.api.v1.Tmem/NewPool",
                request_serializer=tmem_pb2.NewPoolRequest.SerializeToString,
                response_deserializer=tmem_pb2.NewPoolResponse.FromString,
            )
            put = channel.unary_unary(
                "/ramster.api.v1.Tmem/PutPages",
                request_serializer=tmem_pb2.PutPagesRequest.SerializeToString,
                response_deserializer=tmem_pb2.PutPagesResponse.FromString,
            )
            watch = channel.unary_stream(
                "/ramster.api.v1.Admin/WatchState",
                request_serializer=admin_pb2.WatchStateRequest.SerializeToString,
                response_deserializer=admin_pb2.NodeState.FromString,
            )(admin_pb2.WatchStateRequest())
            states = [await watch.read()]
            pool = (await new_pool(tmem_pb2.NewPoolRequest(client="w", persistent=True))).pool_id

            acked = [asyncio.Event() for _ in range(3)]

            async def worker(w: int) -> list[tuple[str, float]]:
                """Puts until the node refuses one: (status, time answered) of each call."""
                outcomes = []
                for n in range(1000):
                    pages = [
                        tmem_pb2.Page(oid=tmem_pb2.Oid(word0=w), index=n * batch + i, data=page(i))
                        for i in range(batch)
                    ]
                    request = tmem_pb2.PutPagesRequest(client="w", pool_id=pool, pages=pages)
                    try:
                        response = await put(request, timeout=30)
                    except grpc.aio.AioRpcError as error:
                        outcomes.append((error.code().name, time.monotonic()))
                        break
                    # Acknowledged: every page of the batch is stored.
                    assert list(response.results) == [tmem_pb2.PUT_STATUS_STORED] * batch
                    outcomes.append(("OK", time.monotonic()))
                    acked[w].set()
                return outcomes

            workers = [asyncio.create_task(worker(w)) for w in range(3)]
            async with asyncio.timeout(30):  # every worker has a put acknowledged: all are busy
                await asyncio.gather(*(event.wait() for event in acked))
            signalled = time.monotonic()
            os.kill(pid, signal.SIGTERM)
            outcomes = await asyncio.gather(*workers)
            while (state := await watch.read()) is not grpc.aio.EOF:
                states.append(state)
            return (
                [[(code, t - signalled) for code, t in o] for o in outcomes],
                states,
                (await watch.code()).name,
            )

    outcomes, states, watch_end = asyncio.run(scenario())
    assert node.process.proc.wait(GRACE) == 0
    assert time.monotonic() - signalled < GRACE
    for calls in outcomes:
        codes = [code for code, _ in calls]
        # Acknowledged puts, then the one call the stopping node no longer took: UNAVAILABLE,
        # or CANCELLED when gRPC had received it but not yet handed it to the node (the client
        # library raises both as the retriable `Unavailable`).
        assert codes[:-1] == ["OK"] * (len(codes) - 1), codes
        assert codes[-1] in ("UNAVAILABLE", "CANCELLED"), codes
        assert len(codes) > 1
    after_signal = [t for calls in outcomes for code, t in calls if code == "OK" and t > 0]
    assert after_signal, "no call in flight at SIGTERM was let finish"
    # The state stream, in flight too, reports the stop and then ends cleanly.
    assert [(s.shutting_down, s.backend_generation) for s in states] == [(False, 1), (True, 1)]
    assert watch_end == "OK"
    assert "node n1 stopped" in node.log()


def test_a_unix_socket_listener_serves_the_client_library(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    listen = f"unix://{tmp_path / 'ramster.sock'}"
    assert listen.startswith("unix:///") and len(listen) < 100  # sun_path holds 107 bytes
    node = node_factory.start("n1", listen=listen)
    assert node.address == listen

    async def scenario() -> None:
        async with Client(listen, "app") as client:
            pool = await client.new_pool(persistent=True)
            items = [(7, i, page(i)) for i in range(3)]
            assert await client.put_many(pool, items) == [True] * 3
            assert await client.get_many(pool, [(7, i) for i in range(4)]) == [
                page(0),
                page(1),
                page(2),
                None,
            ]
            state = await client.state()
            assert (state.node_name, state.epoch) == ("n1", node.epoch)

    asyncio.run(scenario())
    # A restart on the same path finds the old socket file and serves again.
    assert node.stop() == 0
    node.start()
    with SyncClient(listen, "app") as client:
        assert client.new_pool() == 0


def test_every_listen_address_serves_the_same_pages(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    socket_file = tmp_path / "s.sock"
    unix = f"unix://{socket_file}"
    flags = ("--listen", unix, "--socket-mode", "0604")
    node = node_factory.start("n1", extra_flags=flags)  # after --listen 127.0.0.1:0
    assert re.fullmatch(r"127\.0\.0\.1:\d+", node.address)  # the first is primary
    assert socket_file.stat().st_mode & 0o777 == 0o604
    # Pools belong to a client name, not to a connection: one application, two addresses.
    with SyncClient(node.address, "app") as tcp, SyncClient(unix, "app") as local:
        pool = tcp.new_pool(persistent=True)
        assert tcp.put_many(pool, [(7, i, page(i)) for i in range(3)]) == [True] * 3
        assert local.get_many(pool, [(7, i) for i in range(4)]) == [page(0), page(1), page(2), None]
        assert local.put(pool, 8, 0, page(8))
        assert tcp.get(pool, 8, 0) == page(8)
        assert local.state().epoch == tcp.state().epoch == node.epoch
    assert node.stop() == 0
    assert not socket_file.exists()


def test_metrics_endpoint_serves_exact_counters_in_prometheus_text(
    node_factory: NodeFactory,
) -> None:
    node = node_factory.start("n1", extra_flags=("--metrics", "127.0.0.1:0"))
    metrics = str(node.ready["metrics"])
    with SyncClient(node.address, "app") as client:
        pers = client.new_pool(persistent=True)
        eph = client.new_pool()
        assert client.put_many(pers, [(1, i, page(i)) for i in range(3)]) == [True] * 3
        assert client.put_many(eph, [(2, i, page(10 + i)) for i in range(2)]) == [True] * 2
        assert client.get(eph, 2, 0) == page(10)  # a hit, freed: private ephemeral
        assert client.get(eph, 2, 9) is None  # a miss
    status, content_type, body = http_get(metrics, "/metrics")
    assert (status, content_type) == (200, "text/plain; version=0.0.4; charset=utf-8")
    lines = body.splitlines()
    for expected in (
        "# TYPE ramster_pers_zpages gauge",
        'ramster_pers_zpages{node="n1"} 3.0',
        'ramster_eph_zpages{node="n1"} 1.0',
        "# TYPE ramster_frontswap_succ_stores_total counter",
        'ramster_frontswap_succ_stores_total{node="n1"} 3.0',
        'ramster_cleancache_puts_total{node="n1"} 2.0',
        'ramster_cleancache_succ_gets_total{node="n1"} 1.0',
        'ramster_cleancache_failed_gets_total{node="n1"} 1.0',
        'ramster_memory_bytes{node="n1"} 6.7108864e+07',
        'ramster_backend_generation{node="n1"} 1.0',
        'ramster_zcache_on{node="n1"} 1.0',
    ):
        assert expected in lines
    # Each of the node's counters follows its TYPE line; counters, and only counters, end in
    # _total.
    typed: dict[str, str] = {}
    for line in lines:
        declared = re.fullmatch(r"# TYPE (ramster_[a-z0-9_]+) (counter|gauge)", line)
        if declared:
            name, kind = declared.groups()
            assert name not in typed, f"{name} declared twice"
            assert name.endswith("_total") == (kind == "counter"), line
            typed[name] = kind
            continue
        sample = re.fullmatch(r'(ramster_[a-z0-9_]+)\{node="n1"\} (\S+)', line)
        if sample is not None:
            assert sample.group(1) in typed, f"{line!r} has no TYPE line before it"
    assert len(typed) >= 30
    # prometheus-client's server answers on every path.
    assert http_get(metrics, "/metrics?name=x")[0] == 200


def scrape(address: str) -> tuple[dict[str, str], dict[str, float]]:
    """The TYPE and the value of each of the node's counters (one sample, labelled only with
    the node), by name."""
    _, _, body = http_get(address, "/metrics")
    samples = re.findall(r'^(ramster_\w+)\{node="[^"]*"\} (\S+)$', body, re.M)
    values = {name: float(value) for name, value in samples}
    types = dict(re.findall(r"^# TYPE (ramster_\w+) (\S+)$", body, re.MULTILINE))
    return {name: kind for name, kind in types.items() if name in values}, values


def test_a_counter_never_goes_down_and_levels_are_gauges(node_factory: NodeFactory) -> None:
    """Pages held, local or for a peer, come and go: they are gauges, not ``_total`` counters."""
    node = node_factory.start("n1", extra_flags=("--metrics", "127.0.0.1:0"))
    metrics = str(node.ready["metrics"])
    origin = peer_pb2.Origin(node_number=2, epoch="00062a0b1c2d3e4f")
    block: bytes = lz4.block.compress(page(1), store_size=False)
    keys = [(tmem_pb2.Oid(word0=5), i) for i in range(2)]
    with SyncClient(node.address, "app") as client, RawNode(node.address) as wire:
        pool = client.new_pool(persistent=True)
        assert client.put_many(pool, [(5, i, page(i)) for i in range(2)]) == [True] * 2
        foreign = [
            peer_pb2.RemotePage(
                pool=1,
                oid=oid,
                index=i,
                version=1,
                data=block,
                encoding=LZ4,
                page_size=4096,
                checksum=zlib.crc32(block),
            )
            for oid, i in keys
        ]
        put = wire.call(
            "/ramster.api.v1.Peer/PutPages", peer_pb2.PeerPutRequest(origin=origin, pages=foreign)
        )
        assert (
            list(put.parsed(peer_pb2.PeerPutResponse).results) == [tmem_pb2.PUT_STATUS_STORED] * 2
        )
        types, held = scrape(metrics)
        assert (types["ramster_foreign_eph_pages"], held["ramster_foreign_eph_pages"]) == (
            "gauge",
            2,
        )
        assert held["ramster_pers_zpages"] == 2
        assert client.flush_object(pool, 5) is True
        remote_keys = [peer_pb2.RemoteKey(pool=1, oid=oid, index=i) for oid, i in keys]
        flushed = wire.call(
            "/ramster.api.v1.Peer/FlushPages",
            peer_pb2.PeerFlushPagesRequest(origin=origin, keys=remote_keys),
        )
        assert list(flushed.parsed(peer_pb2.PeerFlushResponse).flushed) == [True, True]
        types, emptied = scrape(metrics)
    assert (emptied["ramster_foreign_eph_pages"], emptied["ramster_pers_zpages"]) == (0, 0)
    went_down = {
        name: (held[name], emptied[name])
        for name, kind in types.items()
        if kind == "counter" and emptied[name] < held[name]
    }
    assert went_down == {}


def test_metrics_pass_promtool_check(node_factory: NodeFactory) -> None:
    """The metrics test's promtool assertion, apart so that only it is skipped without promtool."""
    node = node_factory.start("n1", extra_flags=("--metrics", "127.0.0.1:0"))
    with SyncClient(node.address, "app") as client:
        pool = client.new_pool(persistent=True)
        assert client.put_many(pool, [(1, i, page(i)) for i in range(3)]) == [True] * 3
    _, _, body = http_get(str(node.ready["metrics"]), "/metrics")
    check = subprocess.run(
        [require_tool("promtool", "Debian package prometheus"), "check", "metrics"],
        input=body,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (check.returncode, check.stdout + check.stderr) == (0, "")


LISTEN_IN_USE = "cannot be bound: the address is in use or not this host's"
METRICS_IN_USE = "cannot be bound: Address already in use"


def verdict(result: subprocess.CompletedProcess[str]) -> tuple[int, str]:
    """(exit status, last line of stderr) of a node that refused to start: the node's and gRPC's
    own log lines come first (a node logs to stderr), never a traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    ("flag", "reason"), [("--listen", LISTEN_IN_USE), ("--metrics", METRICS_IN_USE)]
)
def test_an_address_in_use_exits_1_with_one_line_naming_it(flag: str, reason: str) -> None:
    """With ``--listen`` it is the second address (after 127.0.0.1:0) that cannot be bound."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_node_cli(flag, address)
    assert verdict(result) == (1, f"ramster node: {flag[2:]} {address!r} {reason}")


def test_a_ready_file_that_cannot_be_written_exits_1_with_one_line(tmp_path: Path) -> None:
    ready = tmp_path / "missing" / "ready.json"
    result = run_node_cli("--ready-file", str(ready), "--drain-timeout", "0")
    assert verdict(result) == (
        1,
        f"ramster node: ready_file {str(ready)!r} cannot be written: No such file or directory",
    )


def test_a_second_node_on_a_taken_port_exits_1_and_the_first_keeps_serving(
    node_factory: NodeFactory,
) -> None:
    """gRPC sets SO_REUSEPORT by default: the second node would bind too, and the kernel would
    split new connections between the two processes."""
    metrics = f"127.0.0.1:{free_port()}"
    first = node_factory.start("n1", extra_flags=("--metrics", metrics))
    for flags, reason in (
        (("--listen", first.address), LISTEN_IN_USE),
        (("--listen", "127.0.0.1:0", "--metrics", metrics), METRICS_IN_USE),
    ):
        argv = [RAMSTER, "node", "--memory", "64MiB", "--name", "n2", *flags]
        second = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert verdict(second) == (1, f"ramster node: {flags[-2][2:]} {flags[-1]!r} {reason}")
    for _ in range(20):  # every new connection reaches the first node
        with SyncClient(first.address, "app") as client:
            assert client.state().epoch == first.epoch


def test_a_node_on_the_socket_of_a_live_draining_node_exits_1_and_leaves_the_file(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    """gRPC unlinks a socket file before it binds: the second node used to take the path over,
    and the first one removed the new file when it exited."""
    socket_file = tmp_path / "s.sock"
    listen = f"unix://{socket_file}"
    first = node_factory.start("n1", listen=listen)
    with SyncClient(listen, "ops") as client:
        assert client.drain(0) == (True, 0)  # alone: drained at once, and still serving
    inode = socket_file.stat().st_ino
    argv = [RAMSTER, "node", "--memory", "64MiB", "--name", "n2", "--listen", listen]
    second = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert verdict(second) == (
        1,
        f"ramster node: listen {listen!r} cannot be bound: a live process answers on "
        f"{str(socket_file)!r} (another node?)",
    )
    assert socket_file.stat().st_ino == inode
    with SyncClient(listen, "app") as client:
        assert client.state().epoch == first.epoch
    assert first.stop() == 0
    assert not socket_file.exists()


def test_a_node_leaves_a_file_that_is_not_a_socket_alone(tmp_path: Path) -> None:
    taken = tmp_path / "s.sock"
    taken.write_text("not a socket")
    listen = f"unix://{taken}"
    result = run_node_cli("--listen", listen)
    assert verdict(result) == (
        1,
        f"ramster node: listen {listen!r} cannot be bound: {str(taken)!r} exists and is not a "
        "socket",
    )
    assert taken.read_text() == "not a socket"
    assert [p.name for p in tmp_path.iterdir()] == ["s.sock"]


def test_a_node_never_removes_a_socket_file_it_did_not_create(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    socket_file = tmp_path / "s.sock"
    listen = f"unix://{socket_file}"
    first = node_factory.start("n1", listen=listen)
    socket_file.unlink()  # an operator cleaned up, say: the path is free for another node
    second = node_factory.start("n2", listen=listen)
    assert first.stop() == 0
    with SyncClient(listen, "app") as client:
        assert client.state().epoch == second.epoch
    assert second.stop() == 0
    assert not socket_file.exists()


def test_a_node_replaces_the_stale_socket_file_of_a_killed_one(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    socket_file = tmp_path / "s.sock"
    listen = f"unix://{socket_file}"
    node = node_factory.start("n1", listen=listen, extra_flags=("--socket-mode", "0604"))
    node.kill()
    assert socket_file.exists()  # nobody answers on it any more
    killed_epoch = node.epoch
    node.start()
    assert node.epoch != killed_epoch
    with SyncClient(listen, "app") as client:
        assert client.state().epoch == node.epoch
    assert socket_file.stat().st_mode & 0o777 == 0o604
    assert [p.name for p in tmp_path.iterdir() if p.is_socket()] == ["s.sock"]


def test_watch_state_follows_backend_loads_and_a_restart_gets_a_new_epoch(
    node_factory: NodeFactory,
) -> None:
    node = node_factory.start("n1", listen=f"127.0.0.1:{free_port()}")
    first_epoch = node.epoch

    def state(generation: int, zcache: bool, epoch: str, stopping: bool = False) -> NodeState:
        return NodeState(
            node_name="n1",
            epoch=epoch,
            backend_generation=generation,
            zcache=zcache,
            ramster=True,
            shutting_down=stopping,
        )

    async def until_restart() -> list[NodeState]:
        async with Client(node.address, "app") as client:
            watch = client.watch_state()
            seen = [await anext(watch)]
            await client.set_param("zcache", "off")
            seen.append(await anext(watch))
            await client.set_param("zcache", "on")
            seen.append(await anext(watch))
            stopping = asyncio.create_task(asyncio.to_thread(node.stop))
            seen += [later async for later in watch]  # the stream ends with the node
            assert await stopping == 0
            return seen

    assert asyncio.run(until_restart()) == [
        state(1, True, first_epoch),
        state(1, False, first_epoch),
        state(2, True, first_epoch),
        state(2, True, first_epoch, stopping=True),
    ]
    node.start()
    assert node.epoch != first_epoch

    async def after_restart() -> NodeState:
        async with Client(node.address, "app") as client:
            return await anext(client.watch_state())

    assert asyncio.run(after_restart()) == state(1, True, node.epoch)
