"""Idle TCP connections to a node, as a flood from one source address: `IdleConnections`.

The connections are held by child processes, each within the file descriptor limit a process may
raise itself to (its hard limit), so a flood can exceed what the node itself may open. Each child
binds its sockets to `source` (an address of this host, such as 127.0.0.2, so the flood comes
from another source than the test's own clients), connects without waiting, waits until every
connect is answered, sends what an HTTP/2 client sends first (its preface and empty settings, so
the server's handshake completes and no handshake timeout closes it), then nothing more, and
holds the sockets until the flood is closed.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from types import TracebackType

FD_MARGIN = 64
"""Descriptors a child keeps for itself (the interpreter, its pipes)."""

_CHILD = """
import resource, select, socket, sys, time
PREFACE = b"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
host, port, source, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for _ in range(count):
    s = socket.socket()
    s.setblocking(False)
    s.bind((source, 0))
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    held.append(s)
# Wait until every connect is answered (accepted, or held in the listen backlog: the node
# takes them from there as fast as it can), or refused, or a minute passes.
poll = select.poll()
for s in held:
    poll.register(s, select.POLLOUT)
pending, deadline = len(held), time.monotonic() + 60
by_fd = {s.fileno(): s for s in held}
while pending and time.monotonic() < deadline:
    for fd, _ in poll.poll(1000):
        poll.unregister(fd)
        pending -= 1
        try:  # an HTTP/2 client's first bytes: the server's handshake is done, the rest is idle
            by_fd[fd].send(PREFACE)
        except OSError:
            pass
print(len(held) - pending, flush=True)
sys.stdin.read()
"""


def accept_queue(port: int) -> int:
    """Connections waiting in the accept queue of the TCP listener on `port` (any address):
    what the listening process has not taken in yet."""
    waiting = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                waiting += int(fields[4].split(":")[1], 16)  # rx_queue of a LISTEN socket
    return waiting


def open_files(pid: int) -> tuple[int, int]:
    """(descriptors open, its soft limit) of process `pid`."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            limit = int(line.split()[3])
    return len(list(Path(f"/proc/{pid}/fd").iterdir())), limit


def per_process() -> int:
    """Connections one child can hold: its hard descriptor limit, less its own."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return hard - FD_MARGIN


class IdleConnections:
    """`count` idle connections from `source` to `host`:`port`, opened by `open`."""

    def __init__(self, host: str, port: int, source: str, count: int) -> None:
        self.host, self.port, self.source, self.count = host, port, source, count
        self._children: list[subprocess.Popen[str]] = []

    def __repr__(self) -> str:
        return f"<IdleConnections {self.count} from {self.source} to {self.host}:{self.port}>"

    def open(self) -> int:
        """Open them all; how many connects were answered within a minute."""
        share = per_process()
        left = self.count
        while left:
            n = min(share, left)
            argv = [sys.executable, "-c", _CHILD, self.host, str(self.port), self.source, str(n)]
            self._children.append(
                subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            )
            left -= n
        opened = 0
        for child in self._children:
            assert child.stdout is not None
            opened += int(child.stdout.readline() or 0)
        return opened

    def close(self) -> None:
        for child in self._children:
            assert child.stdin is not None
            child.stdin.close()
        for child in self._children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._children = []

    def __enter__(self) -> IdleConnections:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
