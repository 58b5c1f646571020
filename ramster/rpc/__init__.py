"""The only node code that knows gRPC: services, message conversion and the status table.

`binding` wraps typed handlers and translates errors once; `convert` validates wire-only fields;
`tmem_service`, `admin_service` and `peer_service` serve the three APIs of DESIGN §8; `server`
builds the node's grpc.aio server over them (health, reflection, and the addresses `listeners`
binds). Not here: the semantics (`ramster.tmem`), the node's put and get paths
(`ramster.tiered`), the client side (`ramster.client`).
"""
