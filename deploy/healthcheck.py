#!/usr/bin/env python3
"""``ramster-health``: exit 0 if a node answers SERVING to a gRPC health check, else 1.

The container image installs this file as ``/opt/ramster/bin/ramster-health`` for its
HEALTHCHECK, for Compose's health checks and for Kubernetes' exec probes (the kubelet's own
``grpc`` probes speak plaintext only, and a node with certificates serves TCP over mTLS only).
Over TCP it calls with the TLS of ``RAMSTER_TLS_CA``, ``RAMSTER_TLS_CERT`` and
``RAMSTER_TLS_KEY`` when they are set (in a node's container: the node's own certificate), in
plaintext otherwise; over a unix socket, which a node serves without TLS, in plaintext. It prints
one line, the status or why there is none, so `docker inspect` shows something a person can act
on. Not here: the node's health service itself (`ramster.node`).
"""

from __future__ import annotations

import argparse
import sys
from typing import cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ramster.errors import InvalidArgument
from ramster.wire.tls import TLS

DESCRIPTION = "Exit 0 if a node answers SERVING to a gRPC health check, else 1."


def check(address: str, service: str, timeout: float, tls: TLS | None) -> tuple[bool, str]:
    """(serving, what to print) for one health check of `service` ("" = the whole node), over
    `tls` if given."""
    request = health_pb2.HealthCheckRequest(service=service)
    channel = (
        grpc.insecure_channel(address)
        if tls is None
        else grpc.secure_channel(address, tls.channel_credentials())
    )
    with channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout)
        except grpc.RpcError as error:
            call = cast(grpc.Call, error)  # what every RpcError raised by a call also is
            return False, f"{address}: {call.code().name}: {call.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return answer.status == health_pb2.HealthCheckResponse.SERVING, f"{address}: {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ramster-health", description=DESCRIPTION)
    parser.add_argument(
        "address", nargs="?", default="127.0.0.1:7470", help="HOST:PORT or unix:///path"
    )
    parser.add_argument("--service", default="", help="a service name; default: the node")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    args = parser.parse_args(argv)
    try:
        tls = None if args.address.startswith("unix:") else TLS.from_env()
    except InvalidArgument as error:
        print(f"{args.address}: {error.message}")
        return 1
    serving, line = check(args.address, args.service, args.timeout, tls)
    print(line)
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
