"""The example application: puts a page into its node and gets it back, once a second, forever.

It reaches the node at RAMSTER_NODE (``unix:///PATH`` or ``HOST:PORT``), with the certificate
of RAMSTER_TLS_CA, RAMSTER_TLS_CERT and RAMSTER_TLS_KEY if they are set (a TCP node serves mTLS
only). It prints one line per round, and stops on the first page that comes back wrong.
"""

import os
import sys
import time

from ramster.client import TLS, SyncClient

with SyncClient(os.environ["RAMSTER_NODE"], "example-app", tls=TLS.from_env()) as client:
    pool = client.new_pool(persistent=True)
    round_number = 0
    while True:
        index = round_number % 1024
        page = round_number.to_bytes(8, "little") * 512  # 4 KiB, different every round
        stored = client.put(pool, 1, index, page)
        if stored and client.get(pool, 1, index) != page:
            sys.exit(f"round {round_number}: page {index} came back wrong")
        print(f"round {round_number}: page {index} {'stored' if stored else 'refused'}", flush=True)
        round_number += 1
        time.sleep(1)
