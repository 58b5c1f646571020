"""deploy/k8s, the kustomize base, checked with no cluster (DESIGN §11).

`kubectl kustomize` renders it when kubectl is installed; otherwise the files that
kustomization.yaml lists are read as they are. `kubernetes-validate --strict` checks the result
against the Kubernetes API schemas, and the tests below hold the manifests to what the node
needs: its identity from the downward API, its memory limit tied to its budget, gRPC probes on
the port it listens on, time to drain, and the unix socket that local pods reach it through.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ramster.client import SyncClient
from ramster.units import parse_size
from tests.support.compose import render
from tests.support.dockerfile import parse as parse_dockerfile
from tests.support.processes import ManagedProcess, free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VALIDATE = str(Path(sys.executable).with_name("kubernetes-validate"))
RAMSTER = str(Path(sys.executable).with_name("ramster"))
KUBECTL = shutil.which("kubectl")
HEADROOM = 256 << 20
"""What the node's Python process needs beyond its budget (--memory), in bytes."""
QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti)?$")


def resource_files() -> list[Path]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [K8S / name for name in kustomization["resources"]]


def rendered(tmp_path: Path) -> Path:
    """The base as `kubectl kustomize` renders it, or, without kubectl, its files concatenated."""
    out = tmp_path / "ramster.yaml"
    if KUBECTL is None:
        out.write_text("\n---\n".join(path.read_text() for path in resource_files()))
        return out
    result = subprocess.run(
        [KUBECTL, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    out.write_text(result.stdout)
    return out


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Any]:
    path = rendered(tmp_path_factory.mktemp("k8s"))
    found = {}
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is not None:
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def container(docs: dict[tuple[str, str], Any], name: str) -> dict[str, Any]:
    spec = docs[("DaemonSet", "ramster-node")]["spec"]["template"]["spec"]
    (found,) = (c for c in spec["containers"] + spec["initContainers"] if c["name"] == name)
    return dict(found)


def flags(argv: list[str]) -> dict[str, str]:
    """``--name=value`` flags; of a repeated flag (``--listen``), the last."""
    return dict(arg.removeprefix("--").split("=", 1) for arg in argv if arg.startswith("--"))


def listens(argv: list[str]) -> list[str]:
    """Every ``--listen=`` address, in order: the first is the node's primary one."""
    return [arg.removeprefix("--listen=") for arg in argv if arg.startswith("--listen=")]


def quantity(text: str) -> int:
    match = QUANTITY.match(text)
    assert match is not None, f"quantity {text!r}: only plain and binary (Ki, Mi, Gi) read here"
    power = {None: 0, "Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4}[match.group(2)]
    return int(match.group(1)) * 1024**power


def test_the_base_validates_strictly_against_the_kubernetes_schemas(tmp_path: Path) -> None:
    result = subprocess.run(
        [KUBERNETES_VALIDATE, "--strict", str(rendered(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.findall(r"^INFO .* passed for resource (\S+) against", result.stdout, re.M)
    assert sorted(passed) == [
        "configmap/ramster-params",
        "daemonset/ramster-node",
        "namespace/ramster",
        "poddisruptionbudget/ramster-node",
        "service/etcd",
        "service/ramster-node",
        "statefulset/etcd",
    ]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl absent: the raw files are validated instead")
def test_kustomize_puts_everything_in_one_namespace_with_one_image(
    docs: dict[tuple[str, str], Any],
) -> None:
    for (kind, name), doc in docs.items():
        if kind != "Namespace":
            assert doc["metadata"]["namespace"] == "ramster", (kind, name)
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ramster", (kind, name)
    images = {container(docs, name)["image"] for name in ("node", "socket-dir")}
    assert images == {"ramster:dev"}


def test_the_node_is_named_after_its_host_and_advertises_its_pod_ip(
    docs: dict[tuple[str, str], Any],
) -> None:
    node = container(docs, "node")
    env = {e["name"]: e for e in node["env"]}
    assert env["RAMSTER_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["RAMSTER_ADVERTISE"]["value"] == "$(POD_IP):7470"
    names = [e["name"] for e in node["env"]]
    assert names.index("POD_IP") < names.index("RAMSTER_ADVERTISE")  # $(POD_IP) expands
    assert node["args"][0] == "node"
    assert listens(node["args"]) == ["0.0.0.0:7470", "unix:///run/ramster/ramster.sock"]
    assert node["envFrom"] == [{"configMapRef": {"name": "ramster-params"}}]


def test_the_memory_limit_is_the_budget_plus_the_process(docs: dict[tuple[str, str], Any]) -> None:
    node = container(docs, "node")
    budget = parse_size(flags(node["args"])["memory"])
    resources = node["resources"]
    limit = quantity(resources["limits"]["memory"])
    assert (budget, limit) == (768 << 20, 1 << 30)
    assert limit == budget + HEADROOM
    assert quantity(resources["requests"]["memory"]) == limit  # what is scheduled is what is used


def test_grpc_probes_ask_the_port_the_node_listens_on(docs: dict[tuple[str, str], Any]) -> None:
    node = container(docs, "node")
    port = int(listens(node["args"])[0].rsplit(":", 1)[1])
    assert {p["name"]: p["containerPort"] for p in node["ports"]} == {"grpc": port, "metrics": 9470}
    assert flags(node["args"])["metrics"] == "0.0.0.0:9470"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert node[probe]["grpc"] == {"port": port}, probe
    # Joining etcd may take the node up to 30 s (ramster.node.JOIN_TIMEOUT): the startup probe
    # waits longer than that before liveness may restart it.
    startup = node["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 40
    template = docs[("DaemonSet", "ramster-node")]["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "9470"


def test_termination_grace_outlasts_the_nodes_drain(docs: dict[tuple[str, str], Any]) -> None:
    spec = docs[("DaemonSet", "ramster-node")]["spec"]["template"]["spec"]
    args = flags(container(docs, "node")["args"])
    grace, drain = float(args["grace"]), float(args["drain-timeout"])
    assert (drain, grace, spec["terminationGracePeriodSeconds"]) == (20, 20, 50)
    # leaving etcd and closing links take the last seconds
    assert spec["terminationGracePeriodSeconds"] >= drain + grace + 10


def test_pods_run_as_the_images_unprivileged_user(docs: dict[tuple[str, str], Any]) -> None:
    user = parse_dockerfile(REPO / "deploy" / "Dockerfile").final.last("USER").args[0]
    spec = docs[("DaemonSet", "ramster-node")]["spec"]["template"]["spec"]
    context = spec["securityContext"]
    assert f"{context['runAsUser']}:{context['runAsGroup']}" == user
    assert context["runAsNonRoot"] is True
    assert [c["name"] for c in spec["containers"]] == ["node"]  # no sidecar
    assert container(docs, "node")["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # Only the init container is root, and may only chown the socket folder to that user.
    init = container(docs, "socket-dir")
    assert init["command"] == ["chown", user, "/run/ramster"]
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert spec["automountServiceAccountToken"] is False


def test_params_are_strings_of_flags_the_node_knows(docs: dict[tuple[str, str], Any]) -> None:
    data = docs[("ConfigMap", "ramster-params")]["data"]
    assert data == {
        "RAMSTER_CLUSTER": "ramster",
        "RAMSTER_ETCD": "http://etcd:2379",
        "RAMSTER_ZCACHE": "on",
        "RAMSTER_RAMSTER": "on",
        "RAMSTER_LOG_LEVEL": "INFO",
    }
    help_text = subprocess.run(
        [RAMSTER, "node", "--help"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    known = set(re.findall(r"\[(RAMSTER_[A-Z_]+)", help_text))
    env = {e["name"] for e in container(docs, "node")["env"]} - {"POD_IP"}
    assert set(data) | env <= known


def test_the_budget_allows_one_node_down_at_a_time(docs: dict[tuple[str, str], Any]) -> None:
    pdb = docs[("PodDisruptionBudget", "ramster-node")]["spec"]
    daemonset = docs[("DaemonSet", "ramster-node")]["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": daemonset["selector"]}
    labels = daemonset["template"]["metadata"]["labels"]
    assert daemonset["selector"]["matchLabels"].items() <= labels.items()
    assert daemonset["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1},
    }
    service = docs[("Service", "ramster-node")]["spec"]
    assert service["selector"] == daemonset["selector"]["matchLabels"]
    assert (service["clusterIP"], service["publishNotReadyAddresses"]) == ("None", True)


def test_etcd_is_one_member_with_storage_and_the_composes_image(
    docs: dict[tuple[str, str], Any],
) -> None:
    statefulset = docs[("StatefulSet", "etcd")]["spec"]
    service = docs[("Service", "etcd")]["spec"]
    assert (statefulset["replicas"], statefulset["serviceName"]) == (1, "etcd")
    assert service["clusterIP"] == "None"
    assert service["selector"] == statefulset["selector"]["matchLabels"]
    (etcd,) = statefulset["template"]["spec"]["containers"]
    compose = render(REPO / "deploy" / "compose.yaml")["services"]["etcd"]
    assert etcd["image"] == compose["image"] == "quay.io/coreos/etcd:v3.5.17"
    args = flags(etcd["command"])
    assert args["data-dir"] == etcd["volumeMounts"][0]["mountPath"] == "/var/lib/etcd"
    assert args["initial-cluster"] == "etcd-0=http://etcd-0.etcd:2380"
    claim = statefulset["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == etcd["volumeMounts"][0]["name"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert etcd[probe]["httpGet"] == {"path": "/health", "port": "client"}
    # The nodes' etcd is this Service.
    params = docs[("ConfigMap", "ramster-params")]["data"]
    assert params["RAMSTER_ETCD"] == f"http://etcd:{service['ports'][0]['port']}"


def test_pods_on_the_host_reach_the_local_node_through_the_hostpath_socket(
    docs: dict[tuple[str, str], Any], tmp_path: Path
) -> None:
    """The node container as node.yaml runs it, with the hostPath folder in tmp_path and its TCP
    and metrics ports free ones."""
    spec = docs[("DaemonSet", "ramster-node")]["spec"]["template"]["spec"]
    (volume,) = spec["volumes"]
    assert volume["hostPath"] == {"path": "/run/ramster", "type": "DirectoryOrCreate"}
    node = container(docs, "node")
    assert node["volumeMounts"] == [{"name": volume["name"], "mountPath": "/run/ramster"}]
    assert flags(node["args"])["socket-mode"] == "0666"
    host = tmp_path / "run-ramster"
    host.mkdir()
    neighbour = host / "other-app.lock"  # the folder is shared: the node must leave this alone
    neighbour.write_text("")
    tcp = f"127.0.0.1:{free_port()}"
    metrics = f"127.0.0.1:{free_port()}"

    def local(word: str) -> str:
        return (
            word.replace("/run/ramster", str(host))
            .replace("0.0.0.0:7470", tcp)
            .replace("0.0.0.0:9470", metrics)
        )

    ready = tmp_path / "node.ready.json"
    argv = [RAMSTER, *map(local, node["args"]), "--name", "k8s-node", "--ready-file", str(ready)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMSTER_")}  # no etcd
    process = ManagedProcess("node", argv, tmp_path / "node.log", env=env)
    try:
        wait_for(ready.exists, 20, "the node's ready file")
        assert json.loads(ready.read_text())["address"] == tcp  # the first --listen is primary
        socket = host / "ramster.sock"
        assert socket.is_socket()
        assert socket.stat().st_mode & 0o777 == 0o666  # any pod's user may connect
        health = subprocess.run(
            [sys.executable, str(REPO / "deploy" / "healthcheck.py"), f"unix://{socket}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (health.returncode, health.stdout) == (0, f"unix://{socket}: SERVING\n")
        # 2,048 pages, a quarter of each random (about 2 MiB packed), each way through the socket.
        noise = random.Random(7)
        pages = [noise.randbytes(1024) + bytes(3072) for _ in range(2048)]
        with SyncClient(f"unix://{socket}", client_name="local-app") as client:
            pool = client.new_pool(persistent=True)
            stored = client.put_many(pool, [(7, n, page) for n, page in enumerate(pages)])
            assert stored == [True] * len(pages)
            assert client.get_many(pool, [(7, n) for n in range(len(pages))]) == pages
        assert process.stop() == 0
        # The socket goes with the node (a restarted one starts clean); nothing else does.
        assert sorted(host.iterdir()) == [neighbour]
    finally:
        process.stop()
