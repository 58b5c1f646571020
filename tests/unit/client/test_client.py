"""The client library without a node: configuration, argument checks before any RPC, lazy
connect, the public surface, and the guard the frontends' shims call through."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import ramster.client
from ramster.client import TLS, Client, InvalidArgument, NodeState, SyncClient
from ramster.client._attach import BackendGuard, backend_of
from ramster.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InternalError,
    NotFound,
    RamsterError,
    Unavailable,
)

NOWHERE = "127.0.0.1:9"  # never contacted: every call below is refused before any RPC
PAGE = b"p" * 4096


def test_the_public_surface() -> None:
    assert ramster.client.__all__ == [
        "TLS",
        "Cleancache",
        "Client",
        "DeadlineExceeded",
        "FailedPrecondition",
        "Frontswap",
        "InternalError",
        "InvalidArgument",
        "NodeState",
        "NotFound",
        "PermissionDenied",
        "PoolNotFound",
        "Quotas",
        "RamsterError",
        "ResourceExhausted",
        "SyncClient",
        "Unauthenticated",
        "Unavailable",
        "Usage",
    ]


def test_constructing_a_client_does_no_io_and_needs_no_loop() -> None:
    client = Client(NOWHERE, "app", timeout=2.5, max_batch=16)
    assert repr(client) == "<Client 127.0.0.1:9 client='app' idle rpcs=0>"
    assert (client.config.timeout, client.config.max_batch) == (2.5, 16)


def test_the_default_client_name_is_unique() -> None:
    names = {Client(NOWHERE).config.client_name for _ in range(3)}
    assert len(names) == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target": "localhost"}, "target 'localhost' is invalid: expected HOST:PORT with a port"),
        ({"target": 7470}, "target 7470 is invalid: expected HOST:PORT or unix:///path"),
        (
            {"client_name": ""},
            "client_name '' is invalid: expected a non-empty name of at most 256 characters",
        ),
        ({"timeout": 0}, "timeout 0 is invalid: expected seconds > 0"),
        ({"max_batch": 1025}, "max_batch 1025 is invalid: expected an int in 1..1024"),
        (
            {"tls": "/etc/ca.crt"},
            "tls '/etc/ca.crt' is invalid: expected a ramster.client.TLS or None",
        ),
    ],
)
def test_bad_configuration_is_refused_naming_the_field(
    options: dict[str, Any], message: str
) -> None:
    arguments = {"target": NOWHERE, **options}
    with pytest.raises(InvalidArgument) as caught:
        Client(**arguments)
    assert caught.value.message.startswith(message)


def test_a_client_with_tls_says_so(tmp_path: Path) -> None:
    for name in ("ca.crt", "app.crt", "app.key"):
        (tmp_path / name).write_text("pem\n")  # read only when the channel opens
    tls = TLS(tmp_path / "ca.crt", tmp_path / "app.crt", tmp_path / "app.key")
    client = Client(NOWHERE, "app", tls=tls)
    assert client.config.tls is tls
    assert repr(client) == "<Client 127.0.0.1:9 client='app' tls idle rpcs=0>"


def test_a_unix_socket_target_is_accepted() -> None:
    assert Client("unix:///run/ramster.sock", "app").config.target == "unix:///run/ramster.sock"


CallOf = Callable[[Client], Awaitable[object]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda c: c.put(0, (1, 2), 0, PAGE),
            "oid (1, 2) is invalid: expected an int or a tuple of three ints",
        ),
        (lambda c: c.get(0, -1, 0), "oid -1 is invalid: expected words in 0..2**64-1"),
        (lambda c: c.flush_page(0, 1, 2**32), "index 4294967296 is invalid: expected an int in"),
        (lambda c: c.get(0, 1, 0, free=1), "free 1 is invalid: expected None, True or False"),
        (lambda c: c.put(-1, 1, 0, PAGE), "pool -1 is invalid: expected an int in 0..2147483647"),
        (lambda c: c.put(0, 1, 0, "text"), "data of type str is invalid: expected bytes"),
        (
            lambda c: c.flush_object(0, (2**64 - 1,) * 3),
            "oid (18446744073709551615, 18446744073709551615, 18446744073709551615) is "
            "invalid: expected not the reserved all-ones oid",
        ),
        (
            lambda c: c.put_many(0, [(1, 0, PAGE), (2, -3, PAGE)]),
            "items[1].index -3 is invalid: expected an int in 0..2**32-1",
        ),
        (
            lambda c: c.get_many(0, [(1, 0), ((1, 2, 3, 4), 0)]),
            "keys[1].oid (1, 2, 3, 4) is invalid: expected an int or a tuple of three ints",
        ),
        (
            lambda c: c.put_many(0, [(1, 0, PAGE), (2, PAGE)]),
            "items[1] is invalid: expected a tuple (oid, index, data)",
        ),
        (lambda c: c.get_many(0, [7]), "keys[0] is invalid: expected a tuple (oid, index)"),
        (
            lambda c: c.new_pool(page_size=1000),
            "page_size 1000 is invalid: expected a power of two in 512..65536",
        ),
        (
            lambda c: c.new_pool(shared_uuid="f00"),
            "shared_uuid 'f00' is invalid: expected a uuid.UUID or None",
        ),
        (lambda c: c.set_param("zcache", True), "value True is invalid: expected a str"),
        (lambda c: c.set_quota(7, 4096), "identity 7 is invalid: expected a str"),
        (lambda c: c.set_quota("client:a", -1), "nbytes -1 is invalid: expected an int >= 0"),
        (lambda c: c.set_quota("client:a", True), "nbytes True is invalid: expected an int >= 0"),
        (lambda c: c.unset_quota(None), "identity None is invalid: expected a str"),
    ],
)
def test_bad_arguments_are_refused_before_any_rpc(call: CallOf, message: str) -> None:
    async def attempt() -> Client:
        client = Client(NOWHERE, "app")
        with pytest.raises(InvalidArgument) as caught:
            await call(client)
        assert caught.value.message.startswith(message)
        return client

    client = asyncio.run(attempt())
    assert repr(client) == "<Client 127.0.0.1:9 client='app' idle rpcs=0>"


def test_a_closed_client_refuses_calls() -> None:
    async def closed() -> None:
        async with Client(NOWHERE, "app") as client:
            pass
        assert repr(client) == "<Client 127.0.0.1:9 client='app' closed rpcs=0>"
        with pytest.raises(FailedPrecondition, match=r"^client 'app' is closed$"):
            await client.get(0, 1, 0)

    asyncio.run(closed())


def test_a_sync_client_runs_its_own_loop_and_stops_it() -> None:
    with SyncClient(NOWHERE, "app") as client:
        assert repr(client) == "<SyncClient 127.0.0.1:9 client='app' idle rpcs=0>"
        with pytest.raises(InvalidArgument, match=r"^oid 'x' is invalid"):
            client.put(0, "x", 0, PAGE)  # type: ignore[arg-type]
    with pytest.raises(FailedPrecondition, match=r"^ramster-client-app: closed$"):
        client.get(0, 1, 0)
    client.close()  # a second close is a no-op


def test_sync_methods_keep_the_async_signatures_and_docs() -> None:
    assert SyncClient.get.__doc__ == Client.get.__doc__
    assert SyncClient.put_many.__name__ == "put_many"


class FakeApi:
    """Raises `error` from every page call; new_pool answers 5."""

    def __init__(self, error: RamsterError | None) -> None:
        self.error = error
        self.destroyed: list[int] = []

    def new_pool(
        self,
        persistent: bool = False,
        shared_uuid: uuid.UUID | None = None,
        page_size: int = 4096,
        codec: str | None = None,
    ) -> int:
        return 5

    def _call(self, answer: Any) -> Any:
        if self.error is not None:
            raise self.error
        return answer

    def put(self, pool: int, oid: Any, index: int, data: bytes) -> bool:
        return bool(self._call(True))

    def get(self, pool: int, oid: Any, index: int, free: bool | None = None) -> bytes | None:
        return bytes(self._call(PAGE))

    def flush_page(self, pool: int, oid: Any, index: int) -> bool:
        return bool(self._call(True))

    def flush_object(self, pool: int, oid: Any) -> bool:
        return bool(self._call(True))

    def destroy_pool(self, pool: int) -> None:
        self.destroyed.append(pool)
        self._call(None)


@pytest.mark.parametrize(
    "error",
    [
        Unavailable("Tmem/PutPages: node unavailable (connection refused)"),
        DeadlineExceeded("Tmem/GetPages: deadline exceeded (Deadline Exceeded)"),
        FailedPrecondition("the zcache backend is off on this node"),
        NotFound("pool_id 0 does not exist for client 'app'"),
    ],
)
def test_the_guard_turns_a_lost_backend_into_failures_and_misses(error: RamsterError) -> None:
    guard = BackendGuard(FakeApi(error), ("e1", 1))
    assert guard.new_pool(persistent=False) == 5
    assert (guard.put(5, 1, 0, PAGE), guard.get(5, 1, 0), guard.flush_page(5, 1, 0)) == (
        False,
        None,
        False,
    )
    assert guard.flush_object(5, 1) is False
    guard.release()
    gone = " gone" if isinstance(error, NotFound) else ""  # the pool is gone: renew the shim
    assert repr(guard) == f"<BackendGuard e1/1 pools=[] lost=5{gone}>"


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (Unavailable("Tmem/GetPages: node unavailable (keys[0] is a page held by node 2)"), True),
        (DeadlineExceeded("Tmem/GetPages: deadline exceeded (Deadline Exceeded)"), True),
        (FailedPrecondition("the zcache backend is off on this node"), False),
        (NotFound("pool_id 5 does not exist for client 'app'"), False),
    ],
)
def test_the_guard_misses_a_persistent_page_only_if_it_is_gone(
    error: RamsterError, raised: bool
) -> None:
    """A persistent page that could not be reached is not gone: the retriable error is the
    answer, not a miss (a frontswap load must not read a slot it never wrote)."""
    guard = BackendGuard(FakeApi(error), ("e1", 1))
    assert guard.new_pool(persistent=True) == 5
    if raised:
        with pytest.raises(type(error)) as caught:
            guard.get(5, 1, 0)
        assert caught.value is error
    else:
        assert guard.get(5, 1, 0) is None
    assert guard.put(5, 1, 0, PAGE) is False  # a store still just fails
    gone = " gone" if isinstance(error, NotFound) else ""
    assert repr(guard) == f"<BackendGuard e1/1 pools=[5] lost={1 + (not raised)}{gone}>"


def test_the_guard_passes_answers_and_other_errors_through() -> None:
    api = FakeApi(None)
    guard = BackendGuard(api, ("e1", 1))
    pools = [guard.new_pool(), guard.new_pool()]
    assert (guard.put(5, 1, 0, PAGE), guard.get(5, 1, 0)) == (True, PAGE)
    guard.release()
    assert (pools, api.destroyed) == ([5, 5], [5])
    # The node gave the id of a pool this guard holds once more: the first one is gone.
    assert repr(guard) == "<BackendGuard e1/1 pools=[] lost=0 gone>"
    api.error = InternalError("Tmem/GetPages: internal error (node log)")
    with pytest.raises(InternalError):
        guard.get(5, 1, 0)
    api.error = InvalidArgument("pages[0].data length 4095 != pool page_size 4096")
    with pytest.raises(InvalidArgument):
        guard.put(5, 1, 0, PAGE[1:])


def state(zcache: bool = True, shutting_down: bool = False, generation: int = 1) -> NodeState:
    return NodeState("n1", "e1", generation, zcache, True, shutting_down)


def test_a_frontend_registers_only_with_a_loaded_backend_that_is_not_stopping() -> None:
    assert backend_of(state()) == ("e1", 1)
    assert backend_of(state(generation=2)) == ("e1", 2)
    assert backend_of(state(zcache=False)) is None
    assert backend_of(state(shutting_down=True)) is None
    assert backend_of(None) is None
