"""Who may do what on a real node (issue 12): bearer tokens name a caller as certificates do,
pools belong to the identity that made them, and each service answers only the roles it is for.
The CA, certificates and tokens are made in a temporary folder with `ramster.trust.files`."""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

import pytest

from ramster.client import TLS, SyncClient, Unauthenticated
from ramster.trust.files import init_ca, issue
from ramster.trust.identity import Identity, Role
from tests.support.nodes import RAMSTER, NodeFactory, NodeProcess

NOW = datetime.datetime.now(datetime.UTC)
PAGE = bytes(range(256)) * 16


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A cluster CA with node n1, clients app and other (with tokens), admin ops (with a token),
    and a second CA "theirs" with an admin ops (with a token)."""
    folder = tmp_path / "pki"
    init_ca(folder, now=NOW)
    issue(folder, Identity(Role.NODE, "n1"), ["127.0.0.1"], now=NOW)
    for identity in (
        Identity(Role.CLIENT, "app"),
        Identity(Role.CLIENT, "other"),
        Identity(Role.ADMIN, "ops"),
    ):
        issue(folder, identity, now=NOW, token=True)
    theirs = tmp_path / "theirs"
    init_ca(theirs, now=NOW)
    issue(theirs, Identity(Role.ADMIN, "ops"), now=NOW, token=True)
    return folder


def tls_of(folder: Path, name: str) -> TLS:
    return TLS(folder / "ca.crt", folder / f"{name}.crt", folder / f"{name}.key")


def tls_node(
    node_factory: NodeFactory, pki: Path, tmp_path: Path, *flags: str
) -> tuple[NodeProcess, str]:
    """Node n1 with TLS on TCP and a unix socket; the node and its socket's address."""
    unix = f"unix://{tmp_path / 'n1.sock'}"
    tls = tls_of(pki, "n1")
    node = node_factory.start(
        "n1",
        extra_flags=(
            *("--tls-ca", str(tls.ca), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)),
            *("--listen", unix),
            *flags,
        ),
    )
    return node, unix


def ramster(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The console script with `args`, and of the RAMSTER_* variables only those of `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAMSTER_")}
    return subprocess.run(
        [RAMSTER, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean | (env or {}),
    )


def test_a_token_proves_a_caller_and_a_bad_one_is_refused(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    node, unix = tls_node(node_factory, pki, tmp_path)
    with SyncClient(unix, client_name="a", token=pki / "app.token") as by_file:
        pool = by_file.new_pool(persistent=True)
        assert by_file.put_many(pool, [(1, 0, PAGE)]) == [True]
    token = (pki / "app.token").read_text().strip()
    with SyncClient(node.address, client_name="a", tls=tls_of(pki, "app"), token=token) as both:
        assert both.stats()["pool_count"] == 1
    refusals = {}
    for case, options in {
        "another CA's token": {"target": unix, "token": tmp_path / "theirs" / "ops.token"},
        "certificate and token disagree": {
            "target": node.address,
            "tls": tls_of(pki, "app"),
            "token": pki / "ops.token",
        },
    }.items():
        target = options.pop("target")
        with SyncClient(target, client_name="a", **options) as client:  # type: ignore[arg-type]
            with pytest.raises(Unauthenticated) as refused:
                client.stats()
            refusals[case] = refused.value.message.split(" (")[0]
    ops_theirs = (tmp_path / "theirs" / "ops.token").read_text()
    assert refusals == {
        "another CA's token": f"token {ops_theirs[:12]!r}... refused: bad signature",
        "certificate and token disagree": (
            "the caller's certificate names <Identity client 'app'> but its token "
            "names <Identity admin 'ops'>: send one, or both of the same identity"
        ),
    }


def test_the_cli_sends_a_token_from_its_flag_or_the_environment(
    node_factory: NodeFactory, pki: Path, tmp_path: Path
) -> None:
    _, unix = tls_node(node_factory, pki, tmp_path)
    with_flag = ramster("param", "get", "zcache", "--node", unix, "--token", pki / "ops.token")
    assert (with_flag.returncode, with_flag.stdout, with_flag.stderr) == (0, "zcache on\n", "")
    theirs = tmp_path / "theirs" / "ops.token"
    from_env = ramster("stats", "--node", unix, env={"RAMSTER_TOKEN": str(theirs)})
    assert from_env.returncode == 1
    assert from_env.stderr.startswith(
        f"ramster stats: token {theirs.read_text()[:12]!r}... refused: bad signature"
    )
    missing = ramster("stats", "--node", unix, "--token", tmp_path / "none.token")
    assert (missing.returncode, missing.stderr) == (
        2,
        f"ramster stats: token file {str(tmp_path / 'none.token')!r} is invalid: No such file "
        "or directory\n",
    )
