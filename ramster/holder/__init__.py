"""RAMster, holder side: the pages of other nodes kept on this one (docs/design.md §5, reference
§A5.7).

`foreign` puts, gets and flushes an origin's pages under its number and epoch, within this node's
budget; `epochs` is what a restarted or departed origin asks of its holders: which of its epochs
are held, adopting one under its new epoch, forgetting the rest. Pure, like the tmem core they
work on. Not here: the gRPC service that serves these to peers (`ramster.rpc.peer_service`), and
the origin's side, which ships pages out and takes them back (`ramster.remote`).
"""
