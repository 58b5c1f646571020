"""`ramster node` processes for tests and benchmarks: free port, temp folder, stop by PID.

`start_node` starts one; `NodeProcess` is one a test stops, kills and restarts; `NodeFactory`
starts a test's nodes and stops them all at its end (the fixtures are in tests/conftest.py).
`NODES` and `ETCDS` stash the processes of a test item, whose logs go into its failure report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nodemanager.keys import abbreviated
from tests.support.etcd import EtcdProcess
from tests.support.processes import ManagedProcess

RAMSTER = str(Path(sys.executable).with_name("ramster"))


def run_cli(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The console script with `args`, and of the RAMSTER_* variables only those of `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAMSTER_")}
    return subprocess.run(
        [RAMSTER, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean | (env or {}),
    )


def table_rows(drawn: str) -> list[list[str]]:
    """The words of each row of a table a command drew (`ramster.cli.view`, off a terminal):
    the header line and the rule under it left out."""
    return [line.split() for line in drawn.splitlines()[2:]]


READY_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0

NODES = pytest.StashKey[list["NodeProcess"]]()
ETCDS = pytest.StashKey[list[EtcdProcess]]()


def file_stem(name: str) -> str:
    """What a node's files in its work folder are named after: a node name may be longer than
    a file name."""
    return abbreviated(name, 64)


def start_node(
    workdir: Path, name: str, *flags: str, listen: str = "127.0.0.1:0", timeout: float = 20.0
) -> tuple[ManagedProcess, dict[str, Any]]:
    """Start a node in `workdir`; return it and its ready file (address, pid, epoch, ...)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / f"{file_stem(name)}.ready.json"
    ready.unlink(missing_ok=True)
    argv = [RAMSTER, "node", "--listen", listen, "--name", name, "--ready-file", str(ready), *flags]
    if "--memory" not in flags:
        argv += ["--memory", "64MiB"]
    if "--drain-timeout" not in flags:  # a test that stops a node drains it on purpose
        argv += ["--drain-timeout", "0"]
    process = ManagedProcess(f"node {name}", argv, workdir / f"{file_stem(name)}.log")
    deadline = time.monotonic() + timeout
    while not ready.exists():
        process.check_alive()
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"node {name} not ready in {timeout} s:\n{process.log_tail()}")
        time.sleep(0.02)
    info: dict[str, Any] = json.loads(ready.read_text())
    return process, info


class NodeProcess:
    """One `ramster node`: `start` waits until it serves (`tests.support.nodes.start_node`);
    `stop` (SIGTERM) and `kill` (SIGKILL) end it by PID; `start` again restarts it with the same
    options, on the same port if `listen` names one. `extra_flags` are further `ramster node`
    flags (``--metrics``, ``--grace``)."""

    def __init__(
        self,
        directory: Path,
        name: str,
        listen: str = "127.0.0.1:0",
        memory: str = "64MiB",
        zcache: bool = True,
        extra_flags: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.name = name
        self.listen = listen
        self.flags = ("--memory", memory, "--zcache", "on" if zcache else "off", *extra_flags)
        self.log_path = directory / f"{file_stem(name)}.log"
        self.process: ManagedProcess | None = None
        self.ready: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<NodeProcess {self.name} {self.process!r} {self.ready.get('address')}>"

    @property
    def address(self) -> str:
        return str(self.ready["address"])

    @property
    def epoch(self) -> str:
        return str(self.ready["epoch"])

    def start(self) -> NodeProcess:
        self.process, self.ready = start_node(
            self.directory, self.name, *self.flags, listen=self.listen, timeout=READY_TIMEOUT
        )
        return self

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after `STOP_TIMEOUT`; the exit status (None if never started)."""
        if self.process is not None:
            return self.process.stop(STOP_TIMEOUT)
        return None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class NodeFactory:
    """Starts nodes for one test and stops every one of them at its end."""

    def __init__(self, directory: Path, nodes: list[NodeProcess]) -> None:
        self.directory = directory
        self.nodes = nodes

    def start(self, name: str, **options: Any) -> NodeProcess:
        """A running node; `NodeProcess` takes the options. To restart one on the same port,
        give it ``listen=f"127.0.0.1:{free_port()}"``, then `kill` or `stop` and `start` it."""
        node = NodeProcess(self.directory, name, **options)
        self.nodes.append(node)
        return node.start()

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()
