"""A node's /metrics, parsed with prometheus-client's own parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.support.nodes import NodeProcess


def scrape(node: NodeProcess) -> dict[str, Metric]:
    """The metric families the node serves, by name (a counter's without ``_total``)."""
    url = f"http://{node.ready['metrics']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(family: Metric, suffix: str, **labels: str) -> float:
    """The value of `family`'s one sample named ``<name><suffix>`` with exactly `labels`."""
    (value,) = [
        s.value for s in family.samples if s.name == family.name + suffix and s.labels == labels
    ]
    return value
