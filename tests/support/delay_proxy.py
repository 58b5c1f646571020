"""`DelayProxy`: a loopback TCP proxy for tests that make a peer slow or cut it off.

It listens on a free loopback port and forwards every connection to a target address. Each
chunk can be held back `delay_up` seconds on its way to the target and `delay_down` seconds on
its way back; `black_hole()` makes it accept and read but forward nothing in either direction
(a partition: the bytes are held, not dropped, and flow on after `restore()`, as TCP would
deliver them once the path heals). It runs its own event loop in a background thread, so a
synchronous test drives it; `close()` (or leaving the ``with`` block) stops the thread and
closes every socket it opened.

Not here: resetting connections the way a network blip does (`tests.support.tcp_proxy.TcpProxy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

CHUNK = 65536
UP, DOWN = "up", "down"


class DelayProxy:
    """Forwards ``127.0.0.1:<free port>`` (`address`) to `target` (``HOST:PORT``).

    delay_up: seconds each chunk waits on its way to the target (default 0).
    delay_down: seconds each chunk waits on its way back (default 0).
    """

    def __init__(self, target: str, delay_up: float = 0.0, delay_down: float = 0.0) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host.strip("[]"), int(port))
        self._delay = {UP: delay_up, DOWN: delay_down}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy")
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._open: asyncio.Event | None = None
        self.connections = 0
        self.address = ""

    def __repr__(self) -> str:
        state = "black-holed" if self.black_holed else "open"
        return (
            f"<DelayProxy {self.address or '-'} -> {self._target[0]}:{self._target[1]} {state} "
            f"up={self._delay[UP]}s down={self._delay[DOWN]}s connections={self.connections}>"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DelayProxy:
        self._thread.start()
        self._call(self._serve())
        return self

    def close(self) -> None:
        """Stop listening, end every connection, stop the loop and join its thread."""
        if self._thread.is_alive():
            self._call(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        if not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- faults ------------------------------------------------------------------------------

    def set_delay(self, up: float | None = None, down: float | None = None) -> None:
        """Delay chunks from now on: `up` towards the target, `down` back (None: unchanged)."""
        if up is not None:
            self._delay[UP] = up
        if down is not None:
            self._delay[DOWN] = down

    @property
    def black_holed(self) -> bool:
        return self._open is not None and not self._open.is_set()

    def black_hole(self) -> None:
        """Forward nothing from now on; new connections are accepted and left hanging."""
        self._call(self._switch(False))

    def restore(self) -> None:
        """Forward again, the held bytes first."""
        self._call(self._switch(True))

    # -- the loop's side ---------------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run `coroutine` on the proxy's loop and wait for it: applied when this returns."""
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def _event(self) -> asyncio.Event:
        assert self._open is not None, "the proxy is not started"
        return self._open

    async def _switch(self, forward: bool) -> None:
        if forward:
            self._event().set()
        else:
            self._event().clear()

    async def _serve(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await asyncio.sleep(0)  # let the transports closed above finish closing

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        upstream: asyncio.StreamWriter | None = None
        try:
            await self._event().wait()  # black-holed: accepted, never connected on
            up_reader, upstream = await asyncio.open_connection(*self._target)
            await asyncio.gather(
                self._pipe(reader, upstream, UP), self._pipe(up_reader, writer, DOWN)
            )
        except OSError:
            pass  # the target refused: the client sees its connection closed
        except asyncio.CancelledError:
            pass  # close(): end normally, or asyncio logs the cancelled connection as an error
        finally:
            for side in (writer, upstream):
                if side is not None:
                    side.close()
            self._handlers.discard(task)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, direction: str
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(CHUNK):
                await self._event().wait()
                if self._delay[direction] > 0:
                    await asyncio.sleep(self._delay[direction])
                    await self._event().wait()  # black-holed while it waited
                sink.write(data)
                await sink.drain()
        sink.close()  # the other pipe then reads end-of-file and finishes too
