"""`NodeConfig`'s transport rule: without TLS a node serves loopback and unix sockets only,
unless `insecure` says otherwise; TLS and `insecure` contradict."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from ramster.config import NbdConfig, NodeConfig, is_loopback
from ramster.errors import InvalidArgument
from ramster.trust.files import init_ca, issue
from ramster.trust.identity import Identity, Role
from ramster.wire.tls import TLS
from ramster.zcache import ZcacheConfig

STORE = ZcacheConfig(memory=2**20)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:7470", True),
        ("127.8.9.10:0", True),
        ("localhost:7470", True),
        ("LOCALHOST:1", True),
        ("[::1]:7470", True),
        ("0.0.0.0:7470", False),
        ("[::]:7470", False),
        ("10.0.0.5:7470", False),
        ("node1:7470", False),
        ("unix:///run/ramster.sock", False),
    ],
)
def test_loopback_is_what_only_this_host_reaches(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


@pytest.mark.parametrize(
    ("listen", "extra"),
    [("0.0.0.0:7470", ()), ("127.0.0.1:0", ("unix:///tmp/r.sock", "node1:7470"))],
)
def test_without_tls_another_address_needs_insecure(listen: str, extra: tuple[str, ...]) -> None:
    refused_address = listen if not extra else extra[-1]
    with pytest.raises(InvalidArgument) as refused:
        NodeConfig(listen=listen, extra_listen=extra, store=STORE)
    assert refused.value.message == (
        f"listen {refused_address!r} is not loopback: serve it with --tls-ca, --tls-cert and "
        "--tls-key, or pass --insecure to serve it in plaintext"
    )
    config = NodeConfig(listen=listen, extra_listen=extra, store=STORE, insecure=True)
    assert (config.tls, config.insecure) == (None, True)


def test_without_tls_loopback_and_unix_sockets_serve() -> None:
    config = NodeConfig(
        listen="127.0.0.1:0", extra_listen=("[::1]:0", "unix:///tmp/r.sock"), store=STORE
    )
    assert (config.tls, config.insecure) == (None, False)


def test_with_tls_any_address_serves_and_insecure_contradicts(tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    init_ca(tmp_path, now=now)
    issue(tmp_path, Identity(Role.NODE, "n1"), now=now)
    tls = TLS(tmp_path / "ca.crt", tmp_path / "n1.crt", tmp_path / "n1.key")
    assert NodeConfig(listen="0.0.0.0:7470", store=STORE, name="n1", tls=tls).tls == tls
    with pytest.raises(InvalidArgument) as refused:
        NodeConfig(listen="0.0.0.0:7470", store=STORE, name="n1", tls=tls, insecure=True)
    assert refused.value.message == (
        "insecure and TLS contradict: give --insecure or the TLS flags"
    )


def test_the_peer_listener_follows_the_transport_rule_and_the_admin_socket_is_a_unix_one() -> None:
    with pytest.raises(InvalidArgument) as refused:
        NodeConfig(listen="127.0.0.1:0", peer_listen="0.0.0.0:7471", store=STORE)
    assert refused.value.message == (
        "listen '0.0.0.0:7471' is not loopback: serve it with --tls-ca, --tls-cert and "
        "--tls-key, or pass --insecure to serve it in plaintext"
    )
    with pytest.raises(InvalidArgument) as refused:
        NodeConfig(listen="127.0.0.1:0", admin_listen="127.0.0.1:7472", store=STORE)
    assert refused.value.message == (
        "admin_listen '127.0.0.1:7472' is invalid: expected unix:///path: a socket file whose "
        "mode (0600) decides who may connect"
    )
    config = NodeConfig(
        listen="127.0.0.1:0",
        peer_listen="127.0.0.1:0",
        admin_listen="unix:///tmp/admin.sock",
        store=STORE,
    )
    assert (config.peer_listen, config.admin_listen) == ("127.0.0.1:0", "unix:///tmp/admin.sock")


def test_a_node_serves_with_a_node_certificate_of_its_own_name(tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    init_ca(tmp_path, now=now)
    issue(tmp_path, Identity(Role.NODE, "n1"), now=now)
    issue(tmp_path, Identity(Role.CLIENT, "app"), now=now)
    for name, certificate, named in (
        ("n2", "n1", "<Identity node 'n1'>"),
        ("app", "app", "<Identity client 'app'>"),
    ):
        tls = TLS(
            tmp_path / "ca.crt", tmp_path / f"{certificate}.crt", tmp_path / f"{certificate}.key"
        )
        with pytest.raises(InvalidArgument) as refused:
            NodeConfig(listen="127.0.0.1:0", store=STORE, name=name, tls=tls)
        assert refused.value.message == (
            f"tls cert {tls.cert} is {named}: node '{name}' serves with a node certificate of "
            f"its own name (`ramster certs issue DIR node {name}`)"
        )


def test_nbd_serves_unix_sockets_and_loopback_tcp() -> None:
    config = NbdConfig(("unix:///run/ramster/nbd.sock", "127.0.0.1:10809", "[::1]:0"))
    assert config.listen[1] == "127.0.0.1:10809"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"spill": "/var/lib/ramster/spill"},
            "nbd_spill_size 0 is invalid: expected at least 4096 bytes with a spill file",
        ),
        (
            {"spill_size": 1 << 30},
            "nbd_spill_size is given without a spill file (--nbd-spill)",
        ),
    ],
)
def test_bad_nbd_configs_are_refused(config: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        NbdConfig(**config)  # type: ignore[arg-type]
    assert refused.value.message == message


def test_nbd_off_loopback_needs_tls_or_insecure() -> None:
    nbd = NbdConfig(("0.0.0.0:10809",))
    with pytest.raises(InvalidArgument) as refused:
        NodeConfig(listen="127.0.0.1:0", store=ZcacheConfig(memory=1 << 20), nbd=nbd)
    assert refused.value.message == (
        "nbd '0.0.0.0:10809' is not loopback: serve it with --tls-ca, --tls-cert and --tls-key "
        "(NBD clients STARTTLS with a certificate of the CA), or pass --insecure to serve it in "
        "plaintext"
    )
    insecure = NodeConfig(
        listen="127.0.0.1:0", store=ZcacheConfig(memory=1 << 20), nbd=nbd, insecure=True
    )
    assert insecure.nbd.listen == ("0.0.0.0:10809",)


def test_an_advertised_host_alone_takes_the_port_of_a_tcp_listener() -> None:
    """A host alone (a pod IP) takes the port peers reach: a unix socket has none to give."""
    tcp = NodeConfig(listen="127.0.0.1:0", store=STORE, advertise="fd00::5")
    assert tcp.advertise == "fd00::5"
    NodeConfig(listen="unix:///tmp/r.sock", store=STORE, advertise="[fd00::5]:7470")
    with pytest.raises(InvalidArgument) as refused:
        NodeConfig(listen="unix:///tmp/r.sock", store=STORE, advertise="fd00::5")
    assert refused.value.message == (
        "advertise 'fd00::5' has no port, and peers reach this node on unix:///tmp/r.sock, no "
        "TCP port to take: give HOST:PORT"
    )
    with pytest.raises(InvalidArgument) as refused:
        NodeConfig(listen="127.0.0.1:0", store=STORE, advertise="[fd00::5")
    assert refused.value.message.startswith("advertise '[fd00::5' is invalid: expected HOST:PORT")


def test_the_lease_ttl_and_the_remote_tunables_are_checked() -> None:
    config = NodeConfig(
        listen="127.0.0.1:0", store=STORE, lease_ttl=7, repair_rate=500, read_timeout_ms=250
    )
    assert (config.lease_ttl, config.repair_rate, config.read_timeout_ms) == (7, 500, 250)
    assert config.recover_timeout == 60
    refusals = [
        (
            {"lease_ttl": 0.5},
            "param lease_ttl value 0.5 is invalid: expected whole seconds in 1..3600",
        ),
        (
            {"lease_ttl": 3601},
            "param lease_ttl value 3601 is invalid: expected whole seconds in 1..3600",
        ),
        (
            {"recover_timeout": 0},
            "param recover_timeout value 0 is invalid: expected whole seconds in 1..31622400",
        ),
        (
            {"repair_rate": 0},
            "param repair_rate value 0 is invalid: expected whole pages per second in 1..10000000",
        ),
        (
            {"read_timeout_ms": 60_001},
            "param read_timeout_ms value 60001 is invalid: expected whole milliseconds in 1..60000",
        ),
    ]
    for changes, message in refusals:
        with pytest.raises(InvalidArgument) as refused:
            NodeConfig(listen="127.0.0.1:0", store=STORE, **changes)  # type: ignore[arg-type]
        assert refused.value.message == message
