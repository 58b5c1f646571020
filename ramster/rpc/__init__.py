"""The only node code that knows gRPC: services, message conversion and the status table.

`binding` wraps typed handlers and translates errors once; `convert` validates wire-only fields;
`tmem_service`, `admin_service` and `peer_service` serve the three APIs of DESIGN §8. Not here:
the semantics (`ramster.tmem`), the client side (`ramster.client`).
"""
