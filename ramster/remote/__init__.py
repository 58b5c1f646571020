"""RAMster proper: shipping pages to peers under pressure, fetching them back, flushing them,
and holding other nodes' pages (DESIGN §5, reference §A5).

`policy` is pure (when to ship, how much, to whom); `peer` is what the layer needs of a link to
one peer (the `Peer` Protocol), and `links` its gRPC implementation; `layer` composes the parts
that do the work — `peers` (links, view, placement), `flushes`, `remotify` (shipping),
`replication` (second copies, repair), `fetch` (remote gets), `homecoming` (recovery, bringing
pages home) — and runs their background loops. The holder side is `ramster.rpc.peer_service`
over `ramster.tmem.foreign`; the core decisions are in `ramster.tmem.shipping`.
"""
