"""``ramster certs``: the cluster CA and the certificates, keys and tokens it issues.

``ramster certs init DIR`` makes the CA; ``ramster certs issue DIR ROLE NAME [--host H ...]
[--days N] [--token]`` issues for a node, client or admin. Each prints the files it wrote. The
work is `ramster.trust.files`; this module only maps the command line onto it.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import TextIO

from ramster.cli import values
from ramster.cli.flags import FromEnvironment, Parser, Switch
from ramster.trust import files
from ramster.trust.identity import ISSUED_ROLES, Identity, issued_role
from ramster.trust.pki import CA_DAYS, DAYS, MAX_DAYS, host_name


def add_certs_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    certs = commands.add_parser("certs", help="make the cluster CA, and certificates from it")
    actions = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    init = actions.add_parser("init", help="write DIR/ca.crt and DIR/ca.key (0600)")
    init.add_argument("dir", type=Path, help="the folder (made if absent, 0700)")
    init.add_argument(
        "--days",
        action=FromEnvironment,
        variable="RAMSTER_CA_DAYS",
        fallback=str(CA_DAYS),
        type=values.int_in(1, MAX_DAYS),
        help=f"lifetime of the CA [RAMSTER_CA_DAYS, {CA_DAYS}]",
    )
    init.add_argument(
        "--force",
        action=Switch,
        variable="RAMSTER_CERTS_FORCE",
        help="overwrite an existing CA [RAMSTER_CERTS_FORCE, off]",
    )
    issue = actions.add_parser(
        "issue",
        help="write DIR/NAME.crt and DIR/NAME.key (0600), for a node also DIR/NAME.pagekey",
    )
    issue.add_argument("dir", type=Path, help="the CA's folder, where the files go")
    issue.add_argument(
        "role",
        type=values.value_type(issued_role, "role"),
        metavar="ROLE",
        help=" | ".join(role.value for role in ISSUED_ROLES),
    )
    issue.add_argument("name", type=values.node_name, help="the node, client or admin name")
    issue.add_argument(
        "--host",
        action=FromEnvironment,
        variable="RAMSTER_CERT_HOST",
        many=True,
        type=values.value_type(_host, "host"),
        help="a DNS name or IP address the certificate is valid for; repeat for each (a node's "
        "always names localhost, 127.0.0.1 and ::1) [RAMSTER_CERT_HOST, comma-separated, none]",
    )
    issue.add_argument(
        "--days",
        action=FromEnvironment,
        variable="RAMSTER_CERT_DAYS",
        fallback=str(DAYS),
        type=values.int_in(1, MAX_DAYS),
        help=f"lifetime of the certificate and token [RAMSTER_CERT_DAYS, {DAYS}]",
    )
    issue.add_argument(
        "--token",
        action=Switch,
        # Not RAMSTER_TOKEN: that is the token file other commands prove who calls with.
        variable="RAMSTER_CERT_TOKEN",
        help="also write DIR/NAME.token, a bearer token (0600) [RAMSTER_CERT_TOKEN, off]",
    )
    issue.add_argument(
        "--force",
        action=Switch,
        variable="RAMSTER_CERTS_FORCE",
        help="overwrite existing files [RAMSTER_CERTS_FORCE, off]",
    )


def run_certs(args: argparse.Namespace, out: TextIO) -> int:
    now = datetime.datetime.now(datetime.UTC)
    if args.certs_command == "init":
        written = files.init_ca(args.dir, now=now, days=args.days, force=args.force)
    else:
        written = files.issue(
            args.dir,
            Identity(args.role, args.name),
            args.host or [],
            now=now,
            days=args.days,
            token=args.token,
            force=args.force,
        )
    for path in written:
        print(f"wrote {path}", file=out)
    return 0


def _host(text: str) -> str:
    host_name(text)
    return text
