"""The ``ramster`` command line: each command maps its flags onto the library (`ramster.cli.main`).

gRPC's core logs on stderr from threads of its own (a failed TLS handshake, at info level),
before, after or between a command's own messages, which say what failed themselves: commands
run with ``GRPC_VERBOSITY=ERROR`` unless the environment sets it.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
