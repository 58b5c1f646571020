"""What a real node serves on /metrics beside its counters (those: test_node_lifecycle.py): the
gRPC calls of each method timed and counted by status, the build, the process, and help text on
every metric. Refusals of the access guard: test_authz.py."""

from __future__ import annotations

import platform

import grpc

from ramster import __version__
from ramster.metric_help import HELP
from tests.support.metrics import sample, scrape
from tests.support.nodes import NodeFactory
from tests.support.wire import RawNode

TMEM = "ramster.api.v1.Tmem"


def test_every_call_is_timed_and_counted_by_method_and_status(node_factory: NodeFactory) -> None:
    node = node_factory.start("n1", extra_flags=("--metrics", "127.0.0.1:0"))
    with RawNode(node.address) as wire:
        for _ in range(2):
            assert wire.tmem("NewPool", client="app").code == grpc.StatusCode.OK
        for _ in range(3):  # not a PutPageBatchRequest: refused before the store sees it
            assert wire.call(f"/{TMEM}/PutPageBatch", b"\xff").refusal == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "request (1 bytes) is not a valid ramster.api.v1.PutPageBatchRequest message",
            )
    families = scrape(node)
    latency = families["ramster_grpc_server_handling_seconds"]
    handled = families["ramster_grpc_server_handled"]
    assert (latency.type, handled.type) == ("histogram", "counter")
    put = {"node": "n1", "grpc_service": TMEM, "grpc_method": "PutPageBatch"}
    new = {**put, "grpc_method": "NewPool"}
    assert sample(latency, "_count", **put) == 3
    assert sample(latency, "_count", **new) == 2
    assert sample(latency, "_bucket", **put, le="+Inf") == 3
    assert 0 < sample(latency, "_sum", **put) < 3
    assert sample(handled, "_total", **put, grpc_code="INVALID_ARGUMENT") == 3
    assert sample(handled, "_total", **new, grpc_code="OK") == 2
    codes = {(s.labels["grpc_method"], s.labels["grpc_code"]) for s in handled.samples}
    assert ("PutPageBatch", "OK") not in codes


def test_build_and_process_metrics(node_factory: NodeFactory) -> None:
    node = node_factory.start("n1", extra_flags=("--metrics", "127.0.0.1:0"))
    families = scrape(node)
    build = {"node": "n1", "version": __version__, "python": platform.python_version()}
    assert sample(families["ramster_build_info"], "", **build) == 1
    # prometheus-client's default collectors: the node's own process.
    assert sample(families["process_resident_memory_bytes"], "") > 10 * 2**20
    assert sample(families["process_open_fds"], "") >= 3
    assert sample(families["process_cpu_seconds"], "_total") > 0
    assert families["python_info"].samples[0].labels["version"] == platform.python_version()


def test_every_metric_has_help_text_and_every_counter_its_own(node_factory: NodeFactory) -> None:
    node = node_factory.start("n1", extra_flags=("--metrics", "127.0.0.1:0"))
    with RawNode(node.address) as wire:  # so that the gRPC metrics have samples
        assert wire.tmem("NewPool", client="app").code == grpc.StatusCode.OK
    families = scrape(node)
    assert [name for name, family in families.items() if not family.documentation] == []
    counters = {
        family.name: family.documentation
        for family in families.values()
        if family.name.startswith("ramster_")
        and family.samples[0].labels == {"node": "n1"}
        and family.name != "ramster_build_info"
    }
    assert len(counters) >= 80
    generic = [name for name, text in counters.items() if text.startswith("A counter of")]
    assert generic == []
    assert counters["ramster_pers_pages_at_risk"] == (
        f"{HELP['pers_pages_at_risk']} (ramster stats: pers_pages_at_risk)"
    )
