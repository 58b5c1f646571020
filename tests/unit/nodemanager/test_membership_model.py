"""Membership's pure parts: key layout, the node entry's JSON, the view, the members table, the
endpoint, credential and name checks, and the rule that only `nodemanager.etcd_client` imports
etcd3aio."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nodemanager.etcd import EtcdMembership, parse_endpoints
from nodemanager.etcd_client import EtcdClient
from nodemanager.etcd_settings import EtcdCredentials
from nodemanager.keys import ClusterKeys, decode_member, encode_member
from nodemanager.model import MemberInfo
from nodemanager.view import Change, ClusterView
from ramster.errors import InvalidArgument
from ramster.units import MiB

ROOT = Path(__file__).resolve().parents[3]
ALPHA = MemberInfo(3, "alpha", "10.0.0.1:7470", "e1", 64 * MiB, 48 * MiB)
ALPHA_JSON = (
    '{"address":"10.0.0.1:7470","capacity_bytes":67108864,"draining":false,"epoch":"e1",'
    '"free_bytes":50331648,"name":"alpha","number":3,"ramster":true,"zcache":true}'
)


def test_keys_live_under_the_cluster_prefix() -> None:
    keys = ClusterKeys("prod")
    assert keys.prefix == "/ramster/prod/"
    assert keys.name("alpha") == "/ramster/prod/names/alpha"
    assert keys.node(3) == "/ramster/prod/nodes/3"
    assert keys.param("remote_target") == "/ramster/prod/params/remote_target"
    assert keys.next_number == "/ramster/prod/next_number"
    assert keys.classify("/ramster/prod/nodes/3") == ("nodes", "3")
    assert keys.classify("/ramster/prod/params/x") == ("params", "x")
    assert keys.classify("/ramster/prod/names/alpha") == ("names", "alpha")
    assert keys.classify("/ramster/prod/next_number") == ("next_number", "")
    assert keys.classify("/ramster/prod/forgotten/7") == ("forgotten", "7")
    assert keys.forgotten(7) == "/ramster/prod/forgotten/7"
    assert keys.quota("client:app") == "/ramster/prod/quotas/client:app"
    assert keys.classify("/ramster/prod/quotas/client:app") == ("quotas", "client:app")
    for foreign in ("/ramster/prod2/nodes/3", "/ramster/prod/nodes/x", "/ramster/prod/nodes/3/y"):
        assert keys.classify(foreign) is None
    # int() refuses '²' though str.isdigit() takes it: such a key is not a node's.
    for foreign in ("/ramster/prod/nodes/²", "/ramster/prod/forgotten/²", "/ramster/prod/x/1"):
        assert keys.classify(foreign) is None


@pytest.mark.parametrize("cluster", ["", "a/b", "-x", "x" * 64])
def test_a_cluster_name_that_would_break_the_layout_is_refused(cluster: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        ClusterKeys(cluster)
    assert raised.value.message == (
        f"cluster {cluster!r} is invalid: expected 1-63 letters, digits, '.', '_' or '-', "
        "starting alnum"
    )


def test_a_member_entry_round_trips_through_json() -> None:
    assert encode_member(ALPHA) == ALPHA_JSON
    assert decode_member(ALPHA_JSON.encode(), 3) == ALPHA
    newer = (  # a field this version does not know, and no zcache/ramster flags
        '{"number":3,"name":"a","address":"h:1","epoch":"e","capacity_bytes":1,"free_bytes":0,'
        '"x":1}'
    )
    assert decode_member(newer, 3) == MemberInfo(3, "a", "h:1", "e", 1, 0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff", "nodes/3 holds b'\\xff': expected a JSON object"),
        (b"[1]", "nodes/3 holds b'[1]': expected a JSON object"),
        (b'{"number":3}', "nodes/3 has no field 'name'"),
        (
            ALPHA_JSON.replace('"free_bytes":50331648', '"free_bytes":true').encode(),
            "nodes/3 field free_bytes True is invalid: expected a JSON int",
        ),
        (
            ALPHA_JSON.replace('"number":3', '"number":4').encode(),
            "nodes/3 field number 4 is invalid: expected 3",
        ),
    ],
)
def test_a_malformed_entry_names_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        decode_member(raw, 3)
    assert raised.value.message == message


def test_the_view_follows_puts_and_deletes() -> None:
    view = ClusterView(ClusterKeys("c"))
    assert view.apply("/ramster/c/nodes/3", ALPHA_JSON.encode()) == Change("members")
    assert view.apply("/ramster/c/nodes/3", ALPHA_JSON.encode()) == Change(None)
    assert view.apply("/ramster/c/params/x", b"1") == Change("params")
    assert view.apply("/ramster/c/names/alpha", b"3") == Change(None)
    assert view.apply("/ramster/other/nodes/4", b"{}") == Change(None)
    assert repr(view) == "<ClusterView 'c' members=[3] params=1>"
    assert (view.members, view.params) == ({3: ALPHA}, {"x": "1"})
    assert view.apply("/ramster/c/nodes/3", b"junk") == Change(
        "members", "nodes/3 holds b'junk': expected a JSON object"
    )
    assert view.apply("/ramster/c/params/x", None) == Change("params")
    assert view.apply("/ramster/c/params/x", None) == Change(None)
    assert (view.members, view.params) == ({}, {})


def test_the_view_follows_quotas_apart_from_params() -> None:
    view = ClusterView(ClusterKeys("c"))
    view.apply("/ramster/c/params/x", b"1")
    assert view.apply("/ramster/c/quotas/client:app", b"4096") == Change("quotas")
    assert view.apply("/ramster/c/quotas/client:app", b"4096") == Change(None)
    assert view.apply("/ramster/c/quotas/x", b"junk") == Change("quotas")  # the node checks it
    assert (view.params, view.quotas) == ({"x": "1"}, {"client:app": "4096", "x": "junk"})
    assert view.apply("/ramster/c/quotas/x", None) == Change("quotas")
    assert view.apply("/ramster/c/quotas/x", None) == Change(None)
    assert view.load([("/ramster/c/params/x", b"1")]) == []
    assert (view.params, view.quotas) == ({"x": "1"}, {})


def test_a_forgotten_node_is_a_change_of_members_and_load_replaces_them() -> None:
    view = ClusterView(ClusterKeys("c"))
    assert view.apply("/ramster/c/forgotten/7", b"gone") == Change("members")
    assert view.apply("/ramster/c/forgotten/7", b"gone") == Change(None)
    assert view.apply("/ramster/c/forgotten/²", b"x") == Change(None)
    assert (view.members, view.forgotten) == ({}, {7: "gone"})
    assert view.apply("/ramster/c/forgotten/7", None) == Change("members")
    assert view.apply("/ramster/c/forgotten/7", None) == Change(None)
    view.apply("/ramster/c/forgotten/7", b"gone")
    assert view.load([("/ramster/c/forgotten/8", b"other")]) == []
    assert view.forgotten == {8: "other"}


def test_load_replaces_the_view_and_reports_what_it_ignored() -> None:
    view = ClusterView(ClusterKeys("c"))
    view.apply("/ramster/c/params/gone", b"1")
    entries = [
        ("/ramster/c/names/alpha", b"3"),
        ("/ramster/c/nodes/3", ALPHA_JSON.encode()),
        ("/ramster/c/nodes/4", b"{}"),
    ]
    assert view.load(entries) == ["nodes/4 has no field 'number'"]
    assert (view.members, view.params) == ({3: ALPHA}, {})


def test_endpoints_are_http_or_https_urls_or_host_port() -> None:
    assert parse_endpoints("http://127.0.0.1:2379") == ["127.0.0.1:2379"]
    assert parse_endpoints("http://a:1, b:2,http://c:3/") == ["a:1", "b:2", "c:3"]
    assert parse_endpoints("https://a:1,https://b:2") == ["a:1", "b:2"]
    with pytest.raises(InvalidArgument) as raised:
        parse_endpoints("https://a:1,b:2")
    assert raised.value.message == (
        "etcd endpoints 'https://a:1,b:2' is invalid: expected all http:// or all https://"
    )
    for bad in ("ftp://a:1", "a", "http://a:x", "", "http://a:1,,"):
        with pytest.raises(InvalidArgument, match=r"^etcd endpoint .* is invalid: expected http"):
            parse_endpoints(bad)


def test_etcd_membership_options_are_checked() -> None:
    with pytest.raises(InvalidArgument) as raised:
        EtcdMembership("http://a:1", "c", ttl=0.5)
    assert raised.value.message == "ttl 0.5 is invalid: expected seconds in 1..3600"
    with pytest.raises(InvalidArgument) as raised:
        EtcdMembership("ftp://a:1", "c")
    assert raised.value.message == (
        "etcd endpoint 'ftp://a:1' is invalid: expected http://HOST:PORT or https://HOST:PORT"
    )
    with pytest.raises(InvalidArgument) as raised:
        EtcdMembership("http://a:1", "c", history=9)
    assert raised.value.message == "history 9 is invalid: expected revisions >= 10"


def test_only_nodemanager_etcd_client_imports_etcd3aio() -> None:
    importers = []
    for path in sorted([*ROOT.glob("ramster/**/*.py"), *ROOT.glob("nodemanager/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name.split(".")[0] == "etcd3aio" for name in names):
                importers.append(str(path.relative_to(ROOT)))
    assert sorted(set(importers)) == ["nodemanager/etcd_client.py"]


def test_etcd_credentials_go_together_and_match_the_endpoints(tmp_path: Path) -> None:
    pem = tmp_path / "some.pem"
    pem.write_text("not read before the channel is made")
    refusals = {
        "cert alone": lambda: EtcdCredentials(ca=pem, cert=pem),
        "cert without ca": lambda: EtcdCredentials(cert=pem, key=pem),
        "user alone": lambda: EtcdCredentials(user="n1"),
        "user and cert": lambda: EtcdCredentials(
            ca=pem, cert=pem, key=pem, user="n1", password="p"
        ),
        "missing ca": lambda: EtcdCredentials(ca=tmp_path / "none.pem"),
        "https without ca": lambda: EtcdClient("https://a:1", 1.0, EtcdCredentials()),
        "ca with http": lambda: EtcdClient("http://a:1", 1.0, EtcdCredentials(ca=pem)),
    }
    messages = {}
    for case, make in refusals.items():
        with pytest.raises(InvalidArgument) as raised:
            make()
        messages[case] = raised.value.message
    assert messages == {
        "cert alone": "etcd cert and etcd key go together: give both or neither",
        "cert without ca": "etcd cert needs etcd ca: a client certificate is for TLS",
        "user alone": "etcd user and etcd password go together: give both or neither",
        "user and cert": "etcd user and etcd cert both name the etcd user: give one of them",
        "missing ca": f"etcd ca '{tmp_path / 'none.pem'}' is invalid: no such file",
        "https without ca": "etcd endpoints 'https://a:1' are https: "
        "give etcd ca, the CA of their certificate",
        "ca with http": "etcd ca is given but the etcd endpoints 'http://a:1' are not https",
    }
    shown = EtcdCredentials(ca=pem, user="n1", password="secret")
    assert repr(shown) == f"<EtcdCredentials ca={pem} user=n1>"
