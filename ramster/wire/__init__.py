"""The gRPC plumbing both ends share: the client library (`ramster.client`) and the node
(`ramster.rpc`, its peer links) speak through it.

`limits` holds what both ends must agree on (batch and message sizes, the client name's length,
addresses) and imports no gRPC; `status` is the one table between gRPC status codes and
`RamsterError`; `calls` makes a typed call and translates its failure once; `messages` turns the
values both ends send (oids, page keys, page encodings, `NodeState`) into messages and back.

Not here: the servicers and the validation of requests only a node receives (`ramster.rpc`),
the pages themselves (`ramster.page`), the wire contracts (`proto/ramster/api/v1`).
"""
