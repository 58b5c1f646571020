"""`ramster node` processes for tests and benchmarks: free port, temp folder, stop by PID."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.processes import ManagedProcess

RAMSTER = str(Path(sys.executable).with_name("ramster"))


def start_node(
    workdir: Path, name: str, *flags: str, listen: str = "127.0.0.1:0", timeout: float = 20.0
) -> tuple[ManagedProcess, dict[str, Any]]:
    """Start a node in `workdir`; return it and its ready file (address, pid, epoch, ...)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / f"{name}.ready.json"
    ready.unlink(missing_ok=True)
    argv = [RAMSTER, "node", "--listen", listen, "--name", name, "--ready-file", str(ready), *flags]
    if "--memory" not in flags:
        argv += ["--memory", "64MiB"]
    if "--drain-timeout" not in flags:  # a test that stops a node drains it on purpose
        argv += ["--drain-timeout", "0"]
    process = ManagedProcess(f"node {name}", argv, workdir / f"{name}.log")
    deadline = time.monotonic() + timeout
    while not ready.exists():
        process.check_alive()
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"node {name} not ready in {timeout} s:\n{process.log_tail()}")
        time.sleep(0.02)
    info: dict[str, Any] = json.loads(ready.read_text())
    return process, info
