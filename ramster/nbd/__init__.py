"""The node's NBD server: any program reaches RAMster through a block device (issue 13).

`protocol` (the wire codecs) and `handshake` (option haggling) are pure; `server` (kept bounded
by `bounds`) carries them over unix and TCP sockets with asyncio; `exports` keeps the node's
exports and their owners, `volume` maps an export's blocks onto a persistent pool of the node's
store, with `spill` behind it for the pages the store refuses.

Not here: the Admin calls that create and delete exports (`ramster.rpc.admin_service`), the
kernel's swap over an export (`ramster swap`, next).
"""
