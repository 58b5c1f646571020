"""The node's gRPC: its services and the validation of the requests they receive.

`binding` wraps typed handlers and translates errors once; `convert` validates wire-only fields;
`tmem_service`, `admin_service` and `peer_service` serve the three APIs of docs/design.md §8, and
`peer_link` is this node's client of a peer's `peer_service`; `server` builds the node's
grpc.aio server over them (health, reflection, and the addresses `listeners` binds). Not here:
the semantics (`ramster.tmem`, `ramster.holder`), the node's put and get paths
(`ramster.tiered`), the plumbing the node shares with the client library (limits, status table,
calls, message conversions: `ramster.wire`), the client side (`ramster.client`).
"""
