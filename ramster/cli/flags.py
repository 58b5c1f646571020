"""Flag values as people type them, and the ``RAMSTER_*`` variables that stand in for flags.

`Parser` is argparse with one-line errors that exit 2, the code of usage errors. A flag added
with ``action=FromEnvironment`` (``--memory``) takes ``RAMSTER_MEMORY`` when the command line
leaves it out: the variable is read only once the command line is parsed (``--help`` works
whatever the environment holds) and is parsed like the flag, so a bad value is refused in one line
that names the variable. The types of the values are in `ramster.cli.values`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from nodemanager.etcd_settings import EtcdCredentials
from ramster.cli.values import endpoints, name_of, node_address, switch
from ramster.errors import InvalidArgument, shown

if TYPE_CHECKING:
    from ramster.wire.tls import TLS

USAGE = 2
"""Exit status of a bad flag or environment value (argparse's own)."""


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
