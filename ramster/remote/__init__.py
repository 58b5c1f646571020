"""RAMster proper: shipping pages to peers under pressure, fetching them back, flushing them,
and holding other nodes' pages (DESIGN §5, reference §A5).

`policy` is pure (when to ship, how much, to whom); `links` is the gRPC client of one peer;
`layer` runs the background work and serves remote gets. The holder side is
`ramster.rpc.peer_service` over `ramster.tmem.foreign`; the core decisions are in
`ramster.tmem.shipping`.
"""
