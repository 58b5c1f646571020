"""RAMster, origin side: this node's pages shipped to peers under pressure, fetched back,
flushed, and taken back after a restart (docs/design.md §5, §6, reference §A5).

The pure steps: `handles` (`RemoteIndex`, the page table's `Elsewhere`: remote handles,
replicas, the flush queue), `shipping` (shipments, remote gets checked again), `copies` (two
copies of a persistent page), `departures` (a peer left), `restore` (taking pages back from what
holders list), `policy` (when to ship, how much, to whom), `absence`. `peer` is what the layer
needs of a link to one peer (the `Peer` Protocol), `ramster.rpc.peer_link` its gRPC
implementation. `layer` composes the parts that do the work —
`peers` (links, view, placement), `flushes`, `remotify` (shipping), `replication` (second copies,
repair), `fetch` (remote gets), `homecoming` (recovery, bringing pages home) — and runs their
background loops. The holder side, other nodes' pages kept here, is `ramster.holder`,
served by `ramster.rpc.peer_service`.
"""
