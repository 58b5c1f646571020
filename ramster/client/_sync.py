"""`SyncClient`: the `Client` surface for blocking code, over a private event loop.

Each `SyncClient` runs a `Client` on an event loop in its own daemon thread; every method is
generated from the `Client` method of the same name, submits the coroutine to that loop and
waits for it, so the two surfaces cannot drift apart. Calls from several threads that land in the
same loop turn are coalesced like concurrent tasks. Not here: what the calls do
(`ramster.client._async`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from ramster.client._async import Client
from ramster.client._config import ClientConfig
from ramster.errors import FailedPrecondition
from ramster.state import NodeState
from ramster.wire.tls import TLS

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread, for callers in other threads."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        """`coro`'s result, run on the loop; the calling thread blocks until then."""
        with self._lock:
            if self._closed:
                coro.close()
                raise FailedPrecondition(f"{self._thread.name}: closed")
            if threading.current_thread() is self._thread:
                coro.close()
                raise FailedPrecondition(f"{self._thread.name}: a blocking call from its own loop")
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise FailedPrecondition(f"{self._thread.name}: closed during the call") from None

    def iterate(self, items: AsyncGenerator[T, None]) -> Generator[T, None, None]:
        """`items`, an async generator living on the loop, one blocking step at a time."""
        try:
            while step := self.run(_step(items)):
                yield step[0]
        finally:
            with contextlib.suppress(FailedPrecondition):  # closed meanwhile: nothing to close
                self.run(_aclose(items))

    def stop(self, last: Coroutine[Any, Any, None]) -> None:
        """Run `last`, cancel whatever still runs on the loop, and end the thread."""
        with self._lock:
            if self._closed:
                last.close()
                return
            future = asyncio.run_coroutine_threadsafe(_finish(last), self._loop)
            self._closed = True
        try:
            future.result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


def _blocking(
    method: Callable[Concatenate[Client, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[SyncClient, P], R]:
    """The blocking twin of a `Client` method."""

    @functools.wraps(method)
    def call(self: SyncClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._loop.run(method(self._client, *args, **kwargs))

    return call


class SyncClient:
    """`Client`, blocking: the same methods, arguments, results and errors; a context manager.

    It satisfies `ramster.frontends.TmemApi`, so the frontends' shims run over it.
    """

    def __init__(
        self,
        target: str,
        client_name: str | None = None,
        timeout: float = 5.0,
        max_batch: int = 64,
        *,
        tls: TLS | None = None,
        token: str | os.PathLike[str] | None = None,
    ) -> None:
        self._client = Client(target, client_name, timeout, max_batch, tls=tls, token=token)
        self._loop = LoopThread(f"ramster-client-{self._client.config.client_name}")

    def __repr__(self) -> str:
        return f"<SyncClient{repr(self._client).removeprefix('<Client')}"

    @property
    def config(self) -> ClientConfig:
        return self._client.config

    @property
    def rpc_count(self) -> int:
        return self._client.rpc_count

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    new_pool = _blocking(Client.new_pool)
    destroy_pool = _blocking(Client.destroy_pool)
    put = _blocking(Client.put)
    get = _blocking(Client.get)
    flush_page = _blocking(Client.flush_page)
    flush_object = _blocking(Client.flush_object)
    put_many = _blocking(Client.put_many)
    get_many = _blocking(Client.get_many)
    stats = _blocking(Client.stats)
    state = _blocking(Client.state)
    params = _blocking(Client.params)
    set_param = _blocking(Client.set_param)
    drain = _blocking(Client.drain)
    forget_node = _blocking(Client.forget_node)
    undrain = _blocking(Client.undrain)
    set_quota = _blocking(Client.set_quota)
    unset_quota = _blocking(Client.unset_quota)
    quotas = _blocking(Client.quotas)
    clients = _blocking(Client.clients)
    create_export = _blocking(Client.create_export)
    list_exports = _blocking(Client.list_exports)
    delete_export = _blocking(Client.delete_export)

    def close(self) -> None:
        """Close the client and stop its thread; calls still in flight end with `Unavailable`
        or `FailedPrecondition`, later ones with `FailedPrecondition`."""
        self._loop.stop(self._client.close())

    def watch_state(self) -> Generator[NodeState, None, None]:
        """The node's state now and after every change, until the node stops; closing the
        generator ends the watch."""
        return self._loop.iterate(self._client.watch_state())


async def _step(items: AsyncGenerator[T, None]) -> tuple[T] | tuple[()]:
    try:
        return (await anext(items),)
    except StopAsyncIteration:
        return ()


async def _aclose(items: AsyncGenerator[T, None]) -> None:
    await items.aclose()


async def _finish(last: Coroutine[Any, Any, None]) -> None:
    try:
        await last
    finally:
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_asyncgens()
