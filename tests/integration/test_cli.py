"""The ``ramster`` command as a person meets it: every flag and ``RAMSTER_*`` variable of every
sub-command, given each kind of bad value, answers one line on stderr that names it and exits 2
(a usage error); a failure at run time (a node or etcd nobody answers on) exits 1, in one line
too. The real console script runs in a subprocess with no ``RAMSTER_*`` variable but the case's.
"""

from __future__ import annotations

import json

import pytest

from ramster.cli.stats_groups import GROUPS
from ramster.params import PARAM_DOCS
from tests.support.nodes import NodeFactory, run_cli
from tests.support.processes import free_port

HOST_PORT = "expected HOST:PORT with a port in 0..65535"
NAME_RULE = "expected 1-63 letters, digits, '.', '_' or '-', starting alnum"
NODE_NAME_RULE = "expected 1-253 letters, digits, '.', '_' or '-', starting alnum"
ADVERTISE = (
    "expected HOST:PORT ([IPV6]:PORT), or a host alone (an IP address, IPv6 bracketed or not, or "
    "a name) to be reached at the port the node listens on"
)
SIZE_RULE = "expected a whole number of bytes such as 4096, 64MiB or 768Mi"
BUDGET_RULE = (
    "expected a whole number of bytes such as 4096, 64MiB or 768Mi, or a percentage of the memory "
    "limit above 0 and at most 100, such as 75%"
)
SWITCH_RULE = "expected on or off"
SECONDS = "expected a number >= 0"
ENDPOINT = "is invalid: expected http://HOST:PORT or https://HOST:PORT"
NODE_RULE = "expected HOST:PORT or unix:///PATH"
PATH_RULE = "expected unix:///PATH with an absolute PATH of at most 98 bytes"
LONG_PATH = "unix:///" + "d" * 99


TTL_RULE = "expected whole seconds in 1..3600"
LOG_RULE = "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
MODE_RULE = "expected octal permission bits 0000..0777, such as 0660"
INT_RULE = "expected an int in"

FLAGS = [
    # command, flag, its RAMSTER_* variable (or None), a bad value, what is said about it
    ("node", "--listen", "LISTEN", "nonsense", f"listen 'nonsense' is invalid: {HOST_PORT}"),
    ("node", "--listen", "LISTEN", "h:65536", f"listen 'h:65536' is invalid: {HOST_PORT}"),
    ("node", "--listen", "LISTEN", "unix://a", f"listen 'unix://a' is invalid: {PATH_RULE}"),
    (
        "node",
        "--listen",
        "LISTEN",
        LONG_PATH,
        f"listen {LONG_PATH[:64]!r}... (107 characters) is invalid: {PATH_RULE}",
    ),
    ("node", "--socket-mode", "SOCKET_MODE", "0999", f"socket_mode '0999' is invalid: {MODE_RULE}"),
    ("node", "--socket-mode", "SOCKET_MODE", "rw", f"socket_mode 'rw' is invalid: {MODE_RULE}"),
    ("node", "--socket-mode", "SOCKET_MODE", "1000", f"socket_mode '1000' is invalid: {MODE_RULE}"),
    ("node", "--memory", "MEMORY", "12x", f"memory '12x' is invalid: {BUDGET_RULE}"),
    ("node", "--memory", "MEMORY", "1.5", f"memory '1.5' is invalid: {BUDGET_RULE}"),
    ("node", "--memory", "MEMORY", "150%", f"memory '150%' is invalid: {BUDGET_RULE}"),
    ("node", "--name", "NAME", "bad!name", f"name 'bad!name' is invalid: {NODE_NAME_RULE}"),
    ("node", "--name", "NAME", "-x", f"name '-x' is invalid: {NODE_NAME_RULE}"),
    ("node", "--name", "NAME", "n" * 254,
     f"name {'n' * 64!r}... (254 characters) is invalid: {NODE_NAME_RULE}"),
    ("node", "--cluster", "CLUSTER", "", f"cluster '' is invalid: {NAME_RULE}"),
    ("node", "--cluster", "CLUSTER", "a/b", f"cluster 'a/b' is invalid: {NAME_RULE}"),
    ("node", "--metrics", "METRICS", "nonsense", f"metrics 'nonsense' is invalid: {HOST_PORT}"),
    ("node", "--metrics", "METRICS", "h:99999", f"metrics 'h:99999' is invalid: {HOST_PORT}"),
    ("node", "--zcache", "ZCACHE", "maybe", f"switch 'maybe' is invalid: {SWITCH_RULE}"),
    ("node", "--ramster", "RAMSTER", "yes", f"switch 'yes' is invalid: {SWITCH_RULE}"),
    ("node", "--grace", "GRACE", "abc", f"seconds 'abc' is invalid: {SECONDS}"),
    ("node", "--grace", "GRACE", "-1", f"seconds '-1' is invalid: {SECONDS}"),
    ("node", "--grace", "GRACE", "nan", f"seconds 'nan' is invalid: {SECONDS}"),
    ("node", "--drain-timeout", "DRAIN_TIMEOUT", "inf", f"seconds 'inf' is invalid: {SECONDS}"),
    ("node", "--drain-timeout", "DRAIN_TIMEOUT", "-", f"seconds '-' is invalid: {SECONDS}"),
    ("node", "--etcd", "ETCD", "bogus", f"etcd endpoint 'bogus' {ENDPOINT}"),
    ("node", "--etcd", "ETCD", "https://e", f"etcd endpoint 'https://e' {ENDPOINT}"),
    ("node", "--etcd", "ETCD", "http://e:1,https://f:2", "etcd endpoints "
     "'http://e:1,https://f:2' is invalid: expected all http:// or all https://"),
    ("node", "--peer", None, "bogus", f"peer 'bogus' is invalid: {HOST_PORT}"),
    ("node", "--node-number", None, "0", f"'0' is invalid: {INT_RULE} 1..2147483647"),
    ("node", "--node-number", None, "one", f"'one' is invalid: {INT_RULE} 1..2147483647"),
    ("node", "--advertise", "ADVERTISE", "a b", f"advertise 'a b' is invalid: {ADVERTISE}"),
    ("node", "--advertise", "ADVERTISE", "h:", f"advertise 'h:' is invalid: {ADVERTISE}"),
    ("node", "--advertise", "ADVERTISE", "[::1", f"advertise '[::1' is invalid: {ADVERTISE}"),
    ("node", "--log-level", "LOG_LEVEL", "LOUD", f"log level 'LOUD' is invalid: {LOG_RULE}"),
    ("node", "--lease-ttl", "LEASE_TTL", "0.5", f"param lease_ttl value '0.5' is invalid: "
     f"{TTL_RULE}"),
    ("node", "--lease-ttl", "LEASE_TTL", "3601", f"param lease_ttl value '3601' is invalid: "
     f"{TTL_RULE}"),
    ("node", "--repair-rate", "REPAIR_RATE", "0", "param repair_rate value '0' is invalid: "
     "expected whole pages per second in 1..10000000"),
    ("node", "--read-timeout-ms", "READ_TIMEOUT_MS", "1.5", "param read_timeout_ms value '1.5' "
     "is invalid: expected whole milliseconds in 1..60000"),
    ("node", "--recover-timeout", "RECOVER_TIMEOUT", "0", "param recover_timeout value '0' is "
     "invalid: expected whole seconds in 1..31622400"),
    ("node", "--insecure", "INSECURE", "maybe", f"switch 'maybe' is invalid: {SWITCH_RULE}"),
    ("up", "--nodes", None, "0", f"'0' is invalid: {INT_RULE} 1..64"),
    ("up", "--nodes", None, "x", f"'x' is invalid: {INT_RULE} 1..64"),
    ("up", "--memory", None, "12x", f"size '12x' is invalid: {SIZE_RULE}"),
    ("up", "--cluster", None, "a b", f"cluster 'a b' is invalid: {NAME_RULE}"),
    ("stats", "--node", "NODE", "bogus", f"node 'bogus' is invalid: {NODE_RULE}"),
    ("stats", "--node", "NODE", "[::1]", f"node '[::1]' is invalid: {NODE_RULE}"),
    ("stats", "--watch", None, "0", "seconds '0' is invalid: expected a number > 0"),
    ("stats", "--watch", None, "-2", "seconds '-2' is invalid: expected a number > 0"),
    ("param get zcache", "--node", "NODE", "h:x", f"node 'h:x' is invalid: {NODE_RULE}"),
    ("param set zcache on", "--cluster", None, "a/b", f"cluster 'a/b' is invalid: {NAME_RULE}"),
    ("param set zcache on --cluster c", "--etcd", "ETCD", "e", f"etcd endpoint 'e' {ENDPOINT}"),
    ("drain", "--node", "NODE", "bogus", f"node 'bogus' is invalid: {NODE_RULE}"),
    ("drain", "--timeout", None, "-1", f"seconds '-1' is invalid: {SECONDS}"),
    ("undrain", "--node", "NODE", "bogus", f"node 'bogus' is invalid: {NODE_RULE}"),
    ("forget-node n1", "--node", "NODE", "bogus", f"node 'bogus' is invalid: {NODE_RULE}"),
    ("members", "--etcd", "ETCD", "ftp://e:1", f"etcd endpoint 'ftp://e:1' {ENDPOINT}"),
    ("members --etcd e:1", "--cluster", "CLUSTER", "a b", f"cluster 'a b' is invalid: {NAME_RULE}"),
    ("demo", "--pages", None, "-3", f"'-3' is invalid: {INT_RULE} 2..32768"),
    ("demo", "--pages", None, "1", f"'1' is invalid: {INT_RULE} 2..32768"),
    ("demo", "--pages", None, "99999", f"'99999' is invalid: {INT_RULE} 2..32768"),
    ("demo", "--memory", None, "12x", f"size '12x' is invalid: {SIZE_RULE}"),
    ("demo", "--node", None, "bogus", f"node 'bogus' is invalid: {NODE_RULE}"),
]  # fmt: skip


def bad_values() -> list[tuple[list[str], dict[str, str], str]]:
    """(arguments, environment, message) of each bad value: on the command line and, for a flag
    with a variable, in the variable (a list variable holds it after a good item)."""
    cases = []
    for command, flag, variable, value, what in FLAGS:
        args = command.split()
        cases.append(([*args, f"{flag}={value}"], {}, f"argument {flag}: {what}"))
        if variable is not None:
            held = f"127.0.0.1:0,{value}" if variable == "LISTEN" else value
            cases.append((args, {f"RAMSTER_{variable}": held}, f"RAMSTER_{variable}: {what}"))
    return cases


@pytest.mark.parametrize(("args", "env", "message"), bad_values())
def test_a_bad_flag_or_variable_exits_2_with_one_line_naming_it(
    args: list[str], env: dict[str, str], message: str
) -> None:
    result = run_cli(*args, env=env)
    assert (result.returncode, result.stderr, result.stdout) == (
        2,
        f"ramster {args[0]}: {message}\n",
        "",
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["node"], {"RAMSTER_MEMORY": "1Ki"}, "memory 1024 is invalid: expected bytes >= 65536"),
        (
            ["node", "--peer", "b:2"],
            {"RAMSTER_ETCD": "http://e:1"},
            "peers are found through etcd: give --etcd or --peer, not both",
        ),
        (["node", "--memory"], {}, "argument --memory: expected one argument"),
        (
            ["param", "put", "zcache"],
            {},
            "argument action: invalid choice: 'put' (choose from 'get', 'set')",
        ),
        (["param", "set", "zcache"], {}, "param set takes NAME VALUE; param get takes NAME only"),
        (
            ["param", "get", "zcache", "on"],
            {},
            "param set takes NAME VALUE; param get takes NAME only",
        ),
        (
            ["param", "get", "zcache", "--cluster", "c"],
            {},
            "--cluster works with `param set` and needs --etcd URL",
        ),
        (
            ["param", "set", "zcache", "maybe", "--cluster", "c", "--etcd", "http://e:1"],
            {},
            "param zcache value 'maybe' is invalid: expected on or off",
        ),
        (
            ["drain", "--timeout", "5000"],
            {},
            "timeout 5000.0 is invalid: expected seconds in 0..3600 (0: the node's own)",
        ),
        (["members"], {}, "members needs --etcd URL (or RAMSTER_ETCD)"),
        (
            ["members", "--etcd", "https://e:1"],
            {},
            "etcd endpoints 'https://e:1' are https: give etcd ca, the CA of their certificate",
        ),
        (
            ["members", "--etcd", "http://e:1", "--etcd-ca", __file__],
            {},
            "etcd ca is given but the etcd endpoints 'http://e:1' are not https",
        ),
        (
            ["node", "--etcd-user", "n1"],
            {"RAMSTER_ETCD_PASSWORD": "secret"},
            "--etcd-* flags are given without --etcd (or RAMSTER_ETCD)",
        ),
        (
            ["param", "set", "zcache", "on", "--cluster", "c", "--etcd", "https://e:1"],
            {"RAMSTER_ETCD_CA": __file__, "RAMSTER_ETCD_CERT": __file__},
            "etcd cert and etcd key go together: give both or neither",
        ),
        (
            ["members", "--etcd", "http://e:1", "--etcd-user", "n1"],
            {},
            "etcd user and etcd password go together: give both or neither",
        ),
        (
            ["members", "--etcd", "https://e:1", "--etcd-user", "n1", "--etcd-password", "p"],
            {
                "RAMSTER_ETCD_CA": __file__,
                "RAMSTER_ETCD_CERT": __file__,
                "RAMSTER_ETCD_KEY": __file__,
            },
            "etcd user and etcd cert both name the etcd user: give one of them",
        ),
        (
            ["members", "--etcd", "https://e:1", "--etcd-ca", "/nonexistent/ca.crt"],
            {},
            "etcd ca '/nonexistent/ca.crt' is invalid: no such file",
        ),
        (
            ["node", "--listen", "0.0.0.0:0"],
            {},
            "listen '0.0.0.0:0' is not loopback: serve it with --tls-ca, --tls-cert and "
            "--tls-key, or pass --insecure to serve it in plaintext",
        ),
        (
            ["node", "--tls-ca", "/nonexistent/ca.crt"],
            {"RAMSTER_TLS_CERT": "/nonexistent/n1.crt", "RAMSTER_TLS_KEY": "/nonexistent/n1.key"},
            "tls ca '/nonexistent/ca.crt' is invalid: no such file",
        ),
        (
            ["stats", "--tls-key", "k.pem"],
            {"RAMSTER_TLS_CERT": "c.pem"},
            "--tls-ca missing: --tls-ca, --tls-cert and --tls-key go together",
        ),
        (
            ["demo", "--tls-ca", __file__, "--tls-cert", __file__, "--tls-key", __file__],
            {},
            "the TLS flags go with --node: the demo's own cluster makes its own CA",
        ),
        (
            ["forget-node", "bad!name"],
            {},
            f"argument name: name 'bad!name' is invalid: {NODE_NAME_RULE}",
        ),
    ],
)
def test_bad_values_together_exit_2_with_one_line(
    args: list[str], env: dict[str, str], message: str
) -> None:
    """Values each flag takes but the command refuses, checked once the flags are read."""
    result = run_cli(*args, env=env)
    assert (result.returncode, result.stderr, result.stdout) == (
        2,
        f"ramster {args[0]}: {message}\n",
        "",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "ramster: the following arguments are required: COMMAND"),
        (["launch"], "ramster: argument COMMAND: invalid choice: 'launch' (choose from 'node', "
         "'up', 'stats', 'param', 'quota', 'drain', 'undrain', 'forget-node', "
         "'members', 'demo', 'certs', 'export', 'swap')"),
        (["stats", "--bogus"], "ramster: unrecognized arguments: --bogus"),
    ],
)  # fmt: skip
def test_a_bad_command_line_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert (result.returncode, result.stderr) == (2, f"{message}\n")


def test_help_works_whatever_the_environment_holds() -> None:
    bad = {"RAMSTER_GRACE": "abc", "RAMSTER_MEMORY": "lots", "RAMSTER_LOG_LEVEL": "LOUD"}
    for args, usage in (
        (["--help"], "usage: ramster [-h]"),
        (["node", "--help"], "usage: ramster node"),
    ):
        result = run_cli(*args, env=bad)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout.startswith(usage), result.stdout


def test_a_flag_given_wins_over_a_bad_variable() -> None:
    """The variable is not read at all when its flag is given."""
    result = run_cli("members", "--etcd", "bogus", env={"RAMSTER_ETCD": "also bad"})
    assert (result.returncode, result.stderr) == (
        2,
        f"ramster members: argument --etcd: etcd endpoint 'bogus' {ENDPOINT}\n",
    )


def test_a_node_or_etcd_nobody_answers_on_exits_1_with_one_line() -> None:
    port = free_port()
    refused = (
        f"node unavailable (failed to connect to all addresses; last error: UNKNOWN: "
        f"ipv4:127.0.0.1:{port}: Failed to connect to remote host: Connection refused)"
    )
    for args, call in (
        (["stats"], "Admin/GetStats"),
        (["param", "get", "zcache"], "Admin/GetParams"),
        (["param", "set", "zcache", "off"], "Admin/SetParam"),
        (["drain", "--timeout", "1"], "Admin/Drain"),
        (["undrain"], "Admin/Undrain"),
        (["forget-node", "n1"], "Admin/ForgetNode"),
    ):
        result = run_cli(*args, "--node", f"127.0.0.1:{port}")
        assert (result.returncode, result.stderr, result.stdout) == (
            1,
            f"ramster {args[0]}: {call}: {refused}\n",
            "",
        )
    result = run_cli("members", env={"RAMSTER_ETCD": f"http://127.0.0.1:{port}"})
    assert (result.returncode, result.stderr, result.stdout) == (
        1,
        f"ramster members: etcd at http://127.0.0.1:{port} is unreachable "
        "(reading /ramster/ramster/)\n",
        "",
    )
    result = run_cli(
        "param", "set", "zcache", "on", "--cluster", "c", "--etcd", f"http://127.0.0.1:{port}"
    )
    assert (result.returncode, result.stderr, result.stdout) == (
        1,
        f"ramster param: etcd at http://127.0.0.1:{port} is unreachable "
        "(writing /ramster/c/params/zcache)\n",
        "",
    )


def test_a_param_the_node_does_not_know_exits_2_with_one_line(node_factory: NodeFactory) -> None:
    node = node_factory.start("n1")
    known = ", ".join(sorted(PARAM_DOCS))
    for args in (["get", "bogus"], ["set", "bogus", "on"]):
        result = run_cli("param", *args, env={"RAMSTER_NODE": node.address})
        assert (result.returncode, result.stderr, result.stdout) == (
            2,
            f"ramster param: param 'bogus' is unknown: expected one of {known}\n",
            "",
        )
    refused = run_cli("param", "set", "zcache", "maybe", "--node", node.address)
    assert (refused.returncode, refused.stderr, refused.stdout) == (
        2,
        "ramster param: param zcache value 'maybe' is invalid: expected on or off\n",
        "",
    )


def test_stats_json_groups_every_counter_of_a_node(node_factory: NodeFactory) -> None:
    node = node_factory.start("n1")
    grouped = run_cli("stats", "--json", "--node", node.address)
    raw = run_cli("stats", "--json", "--raw", "--node", node.address)
    assert (grouped.returncode, grouped.stderr, raw.returncode, raw.stderr) == (0, "", 0, "")
    groups, counters = json.loads(grouped.stdout), json.loads(raw.stdout)
    assert (sorted(groups), sorted(counters)) == (["groups", "state"], ["counters", "state"])
    assert list(groups["groups"]) == list(GROUPS)  # no counter under "other"
    by_group = {name: value for group in groups["groups"].values() for name, value in group.items()}
    assert sorted(by_group) == sorted(counters["counters"])
    assert groups["state"]["node_name"] == "n1"
