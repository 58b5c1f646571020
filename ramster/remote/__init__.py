"""RAMster, origin side: this node's pages shipped to peers under pressure, fetched back,
flushed, and taken back after a restart (DESIGN §5, §6, reference §A5).

`policy` is pure (when to ship, how much, to whom); `restore` is pure too (taking pages back
from what holders list); `layer` runs the background work and serves remote gets, over the gRPC
client of each peer (`ramster.rpc.peer_link`). The holder side, other nodes' pages kept here, is
`ramster.holder`, served by `ramster.rpc.peer_service`; the core decisions are in
`ramster.tmem.shipping`.
"""
