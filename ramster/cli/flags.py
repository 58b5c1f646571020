"""Flag values as people type them, and the ``RAMSTER_*`` variables that stand in for flags.

`Parser` is argparse with one-line errors that exit 2, the code of usage errors. A flag added
with ``action=FromEnvironment`` (``--memory``) takes ``RAMSTER_MEMORY`` when the command line
leaves it out: the variable is read only once the command line is parsed (``--help`` works
whatever the environment holds) and is parsed like the flag, so a bad value is refused in one line
that names the variable. The value types below turn text into a value, or refuse it with the rule
it broke, using the same checks as the config objects they feed (`ramster.config`).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from nodemanager.etcd_settings import TTL_RULE, EtcdCredentials, check_ttl, parse_endpoints
from nodemanager.keys import check_name, check_node_name
from ramster.config import check_listen, parse_socket_mode, unix_path
from ramster.errors import InvalidArgument, shown
from ramster.params import SWITCH_WORDS, ModuleParams
from ramster.units import parse_budget, parse_size
from ramster.wire.limits import split_advertise, split_host_port

if TYPE_CHECKING:
    from ramster.wire.tls import TLS

USAGE = 2
"""Exit status of a bad flag or environment value (argparse's own)."""

T = TypeVar("T")


class Parser(argparse.ArgumentParser):
    """argparse with errors on one line and flags that default to ``RAMSTER_*`` variables."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The sub-command's parser (made by add_parser, of this class) sets it last: `main`
        # reads the variables of that parser's flags.
        self.set_defaults(command_parser=self)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {message}\n")

    def read_environment(self, args: argparse.Namespace) -> None:
        """Give each `FromEnvironment` flag of this parser that the command line left out the
        value of its variable, else its fallback."""
        for action in self._actions:
            if isinstance(action, FromEnvironment) and getattr(args, action.dest) is None:
                setattr(args, action.dest, action.from_environment(self))
                if action.needed and getattr(args, action.dest) is None:
                    flag = "/".join(action.option_strings)
                    self.error(
                        f"the following arguments are required: {flag} (or {action.variable})"
                    )


class FromEnvironment(argparse.Action):
    """A flag whose default is the variable named after it (``--drain-timeout``:
    ``RAMSTER_DRAIN_TIMEOUT``), or `variable` where that name means something else to another
    command, else `fallback` (text, parsed like a value given on the command line; None: no
    value). With `many`, each use of the flag adds a value and the variable holds a
    comma-separated list."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        *,
        fallback: str | None = None,
        many: bool = False,
        variable: str | None = None,
        **kwargs: Any,
    ) -> None:
        # argparse would demand a required flag on the command line; its variable may stand in.
        self.needed = kwargs.pop("required", False)
        super().__init__(option_strings, dest, default=None, **kwargs)
        self.variable = variable or f"RAMSTER_{dest.upper()}"
        self.fallback = fallback
        self.many = many

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if self.many:
            values = [*(getattr(namespace, self.dest) or []), values]
        setattr(namespace, self.dest, values)

    def from_environment(self, parser: Parser) -> Any:
        text = os.environ.get(self.variable)
        source = self.variable
        if text is None:
            text, source = self.fallback, f"argument {'/'.join(self.option_strings)}"
        if text is None:
            return None
        try:
            if self.many:
                return [self._convert(item.strip()) for item in text.split(",")]
            return self._convert(text)
        except argparse.ArgumentTypeError as error:
            parser.error(f"{source}: {error}")
        except (TypeError, ValueError):  # argparse's words for a type such as int
            name = getattr(self.type, "__name__", repr(self.type))
            parser.error(f"{source}: invalid {name} value: {shown(text)}")

    def _convert(self, text: str) -> Any:
        return text if self.type is None else self.type(text)  # type: ignore[operator]


class Switch(FromEnvironment):
    """A flag that takes no value (``--json``): on when given, else its variable's on/off
    (`switch`), else off."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, type=switch, fallback="off", **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, True)


def node_flag(parser: Parser, help: str = "the node") -> None:
    """``--node``: the node a command talks to, and the TLS and token flags to talk to it with."""
    parser.add_argument(
        "--node",
        action=FromEnvironment,
        fallback="127.0.0.1:7470",
        type=node_address,
        help=f"HOST:PORT or unix:///PATH of {help} [RAMSTER_NODE, 127.0.0.1:7470]",
    )
    caller_flags(parser)


def caller_flags(parser: Parser) -> None:
    """The TLS and token flags a command proves who it is with, to a node (`node_flag`)."""
    tls_flags(parser)
    parser.add_argument(
        "--token",
        action=FromEnvironment,
        metavar="FILE",
        help="a bearer token file (`ramster certs issue ... --token`) proving who calls "
        "[RAMSTER_TOKEN, none]",
    )


def token_of(args: argparse.Namespace) -> str | None:
    """The token in the file of ``--token`` (`caller_flags`), None without one."""
    from ramster.wire.bearer import load_token

    return None if args.token is None else load_token(Path(args.token))


TLS_FIELDS = {
    "ca": "the cluster CA's certificate",
    "cert": "this end's certificate, of that CA",
    "key": "the certificate's private key",
}


def tls_flags(parser: Parser) -> None:
    """``--tls-ca``, ``--tls-cert``, ``--tls-key``: the PEM files of TLS (`tls_of` reads them)."""
    for field, what in TLS_FIELDS.items():
        parser.add_argument(
            f"--tls-{field}",
            action=FromEnvironment,
            metavar="FILE",
            help=f"{what} (PEM); the three go together [RAMSTER_TLS_{field.upper()}, no TLS]",
        )


def tls_of(args: argparse.Namespace) -> TLS | None:
    """The `TLS` of the flags `tls_flags` added: None if none is given, all three otherwise."""
    from ramster.wire.tls import TLS  # it loads grpc: not for every --help

    given = {field: getattr(args, f"tls_{field}") for field in TLS_FIELDS}
    if not any(given.values()):
        return None
    missing = [f"--tls-{field}" for field, path in given.items() if not path]
    if missing:
        raise InvalidArgument(
            f"{' and '.join(missing)} missing: --tls-ca, --tls-cert and --tls-key go together"
        )
    return TLS(**given)


def etcd_flag(parser: Parser, help: str = "etcd endpoints [RAMSTER_ETCD, none]") -> None:
    """``--etcd``: the endpoints of the cluster's etcd, and what to show it (`etcd_credentials_of`
    reads them): etcdctl's ``--cacert``/``--cert``/``--key`` or ``--user``/``--password``."""
    parser.add_argument("--etcd", action=FromEnvironment, type=endpoints, help=help)
    for flag, what in ETCD_CREDENTIALS.items():
        parser.add_argument(
            f"--etcd-{flag}",
            action=FromEnvironment,
            metavar="FILE" if flag in {"ca", "cert", "key"} else flag.upper(),
            help=f"{what} [RAMSTER_ETCD_{flag.upper()}, none]",
        )


ETCD_CREDENTIALS = {
    "ca": "the CA of etcd's certificate (PEM), for https:// endpoints",
    "cert": "a client certificate etcd trusts (PEM); its CN is the etcd user",
    "key": "the client certificate's private key (PEM)",
    "user": "an etcd user, instead of a client certificate",
    "password": "that user's password (better in the variable than on the command line)",
}


def etcd_credentials_of(args: argparse.Namespace) -> EtcdCredentials | None:
    """The `EtcdCredentials` of the flags `etcd_flag` added; None if none is given."""
    given = {field: getattr(args, f"etcd_{field}") for field in ETCD_CREDENTIALS}
    if not any(given.values()):
        return None
    if not args.etcd:
        raise InvalidArgument("--etcd-* flags are given without --etcd (or RAMSTER_ETCD)")
    return EtcdCredentials(**given)


def node_or_cluster_flags(parser: Parser, what: str) -> None:
    """``--node`` (`node_flag`), or ``--cluster NAME`` with ``--etcd`` to `what` cluster-wide in
    etcd instead: for settings a node takes over Admin and every node follows in etcd."""
    node_flag(parser)
    # Not RAMSTER_CLUSTER, which names the cluster of `members`: here a name turns the command
    # cluster-wide, so each command has its own (RAMSTER_PARAM_CLUSTER).
    variable = f"RAMSTER_{parser.prog.split()[-1].upper()}_CLUSTER"
    parser.add_argument(
        "--cluster",
        action=FromEnvironment,
        variable=variable,
        metavar="NAME",
        type=name_of("cluster"),
        help=f"{what} cluster-wide in etcd instead (with --etcd) [{variable}, none]",
    )
    etcd_flag(parser)


def cluster_flag(parser: Parser) -> None:
    """``--cluster``: the name of the cluster in etcd."""
    parser.add_argument(
        "--cluster",
        action=FromEnvironment,
        fallback="ramster",
        type=name_of("cluster"),
        help="cluster name [RAMSTER_CLUSTER, ramster]",
    )


def value_type(parse: Callable[[str], T], name: str) -> Callable[[str], T]:
    """`parse` as an argparse type named `name`: its `InvalidArgument` becomes the one-line
    error of the flag (or variable) that held the text."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except InvalidArgument as error:
            raise argparse.ArgumentTypeError(error.message) from None

    convert.__name__ = name
    return convert


def _switch(text: str) -> bool:
    value = SWITCH_WORDS.get(text.strip().lower())
    if value is None:
        raise InvalidArgument.field("switch", text, "on or off")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if not 0 <= value < math.inf:
        raise InvalidArgument.field("seconds", text, "a number >= 0")
    return value


def _interval(text: str) -> float:
    value = _number(text)
    if not 0 < value < math.inf:
        raise InvalidArgument.field("seconds", text, "a number > 0")
    return value


def _number(text: str) -> float:
    """`text` as a float; NaN, which every range refuses, if it is not a number."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def int_in(low: int, high: int) -> Callable[[str], int]:
    """The type of an int flag in `low`..`high`."""

    def parse(text: str) -> int:
        word = text.strip()
        if not word.lstrip("-").isdigit() or not low <= int(word) <= high:
            raise InvalidArgument(f"{shown(text)} is invalid: expected an int in {low}..{high}")
        return int(word)

    return value_type(parse, "int")


def _log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise InvalidArgument.field("log level", text, f"one of {', '.join(LOG_LEVELS)}")
    return text.upper()


LOG_LEVELS = tuple(logging.getLevelName(level) for level in (10, 20, 30, 40, 50))


def host_port(field: str) -> Callable[[str], str]:
    """The type of a ``HOST:PORT`` flag; refusals name `field`."""

    def parse(text: str) -> str:
        split_host_port(text, field)
        return text

    return value_type(parse, "address")


def _node_address(text: str) -> str:
    if unix_path(text) is None:
        try:
            split_host_port(text, "node")
        except InvalidArgument:
            raise InvalidArgument.field("node", text, "HOST:PORT or unix:///PATH") from None
    return text


def name_of(field: str) -> Callable[[str], str]:
    """The type of a name flag (a node or cluster name); refusals name `field`."""
    return value_type(lambda text: check_name(field, text), "name")


node_name = value_type(lambda text: check_node_name("name", text), "name")
"""The type of a node's name, which may be longer than other names (`check_node_name`)."""


def _advertise(text: str) -> str:
    split_advertise(text)
    return text


def param_value(name: str) -> Callable[[str], Any]:
    """The type of a flag that gives module param `name` its value at start: parsed and
    refused as ``ramster param set`` does (`ramster.params.ModuleParams.with_text`)."""
    return value_type(lambda text: getattr(ModuleParams().with_text(name, text), name), "value")


def _lease_ttl(text: str) -> float:
    try:
        return check_ttl(_number(text), "lease_ttl")
    except InvalidArgument:
        raise InvalidArgument.field("lease_ttl", text, TTL_RULE) from None


def _listen(text: str) -> str:
    check_listen(text)
    return text


def _endpoints(text: str) -> str:
    parse_endpoints(text)
    return text


size = value_type(parse_size, "size")
budget = value_type(parse_budget, "size")
switch = value_type(_switch, "switch")
seconds = value_type(_seconds, "seconds")
interval = value_type(_interval, "seconds")
log_level = value_type(_log_level, "log level")
node_address = value_type(_node_address, "address")
listen = value_type(_listen, "address")
advertise = value_type(_advertise, "address")
socket_mode = value_type(parse_socket_mode, "mode")
endpoints = value_type(_endpoints, "endpoints")
lease_ttl = value_type(_lease_ttl, "seconds")
