"""deploy/monitoring: Prometheus scrape configs, alert rules and the Grafana dashboard.

`promtool` (Debian package prometheus; .ci/run installs it) checks the configs and the rules and
runs the alerts' unit tests; every metric the alerts and the dashboard name must be one a real
node serves. Without promtool the promtool tests are skipped on a developer's machine and fail
in CI.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from ramster.client import SyncClient
from tests.support.nodes import NodeFactory
from tests.support.tools import require_tool

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
ALERTS = {
    "RamsterNodeDown",
    "RamsterStoreFull",
    "RamsterRemotifyFailures",
    "RamsterPersistentPagesAtRisk",
    "RamsterPersistentPagesLost",
    "RamsterNoTargetUp",
    "RamsterCorruptPages",
    "RamsterUnreplicatedPuts",
    "RamsterMemoryAboveBudget",
}
MAIN_COUNTERS = {
    *("ramster_eph_zpages", "ramster_pers_zpages"),
    *("ramster_eph_compressed_bytes", "ramster_pers_compressed_bytes"),
    *("ramster_used_bytes", "ramster_memory_bytes"),
    *("ramster_eph_pages_remoted_total", "ramster_pers_pages_remoted_total"),
    *("ramster_remote_pages", "ramster_foreign_eph_pages", "ramster_foreign_pers_pages"),
    *("ramster_cleancache_succ_gets_total", "ramster_cleancache_failed_gets_total"),
    *("ramster_frontswap_loads_total", "ramster_frontswap_failed_loads_total"),
    *("ramster_remote_eph_pages_succ_get_total", "ramster_remote_pers_pages_succ_get_total"),
    *("ramster_compress_poor_total", "ramster_mean_compress_poor_total"),
    *("ramster_failed_eph_puts_total", "ramster_failed_pers_puts_total"),
    "ramster_put_quota_total",
}
"""Pages held, compression, remoted and foreign pages, hit rates and rejections
(docs/design.md §10)."""
PROMETHEUS_OWN = {"up"}
"""Metrics Prometheus makes itself, for every target."""
PROMQL_WORDS = {
    *("sum", "count", "rate", "increase", "absent", "histogram_quantile", "clamp_min"),
    *("and", "or", "on", "by", "without"),
}
RUNBOOK = MONITORING.parents[1] / "docs" / "runbook.md"


def promtool() -> str:
    return require_tool("promtool", "Debian package prometheus")


def run_promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return loaded


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def as_promql(expr: str) -> str:
    """A dashboard query as Prometheus receives it from Grafana (its variables filled in)."""
    return expr.replace("$__rate_interval", "5m").replace('"$node"', '".*"')


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers that are no function, keyword or
    label (labels stand inside braces and after by/on, which are dropped first)."""
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\b(by|on|without|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    names = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", expr))
    return {name for name in names if name not in PROMQL_WORDS}


def test_scrape_configs_are_valid_and_load_the_alerts() -> None:
    for config in ("prometheus.yml", "prometheus-kubernetes.yml"):
        result = run_promtool("check", "config", config)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {config} is valid prometheus config file syntax" in result.stdout
        assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout
        scrape = yaml.safe_load((MONITORING / config).read_text())
        assert scrape["rule_files"] == ["alerts.yml"]
        assert [job["job_name"] for job in scrape["scrape_configs"]] == ["ramster"]
    kubernetes = yaml.safe_load((MONITORING / "prometheus-kubernetes.yml").read_text())
    (dns,) = kubernetes["scrape_configs"][0]["dns_sd_configs"]
    # The headless Service of deploy/k8s/node-service.yaml, in the base's namespace.
    assert (dns["names"], dns["type"], dns["port"]) == (["ramster-node.ramster.svc"], "A", 9470)


def test_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    assert {rule["alert"] for rule in alert_rules()} == ALERTS
    checked = run_promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    tested = run_promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.split() == ["Unit", "Testing:", "alerts_test.yml", "SUCCESS"]
    # Every alert is shown both firing and not.
    tests = yaml.safe_load((MONITORING / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == ALERTS
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} == ALERTS


def test_every_alert_has_a_severity_summary_description_and_runbook_section() -> None:
    sections = re.findall(r"^## (\w+)$", RUNBOOK.read_text(), re.MULTILINE)
    assert sections == [rule["alert"] for rule in alert_rules()]  # one each, in the same order
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, rule["alert"]
        # The heading's anchor, as GitHub and most Markdown renderers make it.
        assert annotations["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool checks each query as the expression of a recording rule."""
    exprs = dashboard_exprs()
    rules = [{"record": f"dashboard:q{n}", "expr": as_promql(e)} for n, e in enumerate(exprs)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_dashboard_shows_the_main_counters_per_node() -> None:
    board = dashboard()
    assert (board["uid"], board["title"]) == ("ramster-overview", "RAMster")
    panels = board["panels"]
    assert [panel["title"] for panel in panels] == [
        "Nodes up",
        "Pages held",
        "Memory used of budget",
        "Compression ratio",
        "Pages shipped to peers",
        "Pages on peers and held for peers",
        "Hit rates",
        "Rejections",
        "Evictions and losses",
        "Remotify busy",
        "Persistent copies",
        "gRPC latency",
        "gRPC calls by status",
        "Resident memory against budget",
    ]
    assert len({panel["id"] for panel in panels}) == len(panels)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["node"]["definition"] == "label_values(ramster_memory_bytes, node)"
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]
        for target in panel["targets"]:
            if "ramster_" in target["expr"]:  # every per-node query follows the node picker
                assert target["expr"].count("ramster_") == target["expr"].count('node=~"$node"')


def test_alerts_and_dashboard_name_only_metrics_a_node_serves(node_factory: NodeFactory) -> None:
    node = node_factory.start("node1", extra_flags=("--metrics", "127.0.0.1:0"))
    with SyncClient(node.address, "app") as client:  # a call: the gRPC metrics have samples
        client.new_pool()
    url = f"http://{node.ready['metrics']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        served = {
            re.split(r"[{ ]", line)[0]
            for line in response.read().decode().splitlines()
            if line and not line.startswith("#")
        }
    named = {"alerts.yml": set(), "grafana-dashboard.json": set()}
    for rule in alert_rules():
        named["alerts.yml"] |= metric_names(rule["expr"])
    for expr in dashboard_exprs():
        named["grafana-dashboard.json"] |= metric_names(as_promql(expr))
    for source, names in named.items():
        assert names - served - PROMETHEUS_OWN == set(), source
    assert MAIN_COUNTERS - named["grafana-dashboard.json"] == set()
    assert {
        "ramster_grpc_server_handling_seconds_bucket",
        "ramster_grpc_server_handled_total",
        "process_resident_memory_bytes",
    } <= named["grafana-dashboard.json"]
    assert named["alerts.yml"] == {
        "up",
        "ramster_used_bytes",
        "ramster_memory_bytes",
        "ramster_eph_pages_remote_failed_total",
        "ramster_pers_pages_remote_failed_total",
        "ramster_pers_pages_at_risk",
        "ramster_remote_pers_pages_lost_total",
        "ramster_remote_pages_corrupt_total",
        "ramster_pers_puts_unreplicated_total",
        "process_resident_memory_bytes",
    }
