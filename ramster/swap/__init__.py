"""Kernel swap onto RAMster: the chain the kernel swaps through, set up and taken down.

    kernel swap → loop device (direct I/O) → FUSE file of ``nbdfuse`` → NBD over a unix socket →
    the node's export

The kernel will not swap to the FUSE file itself (FUSE has no swap_activate: "appears to have
holes"), a loop device over it with direct I/O it takes. ``swapon --discard=pages`` makes the
kernel send TRIM for freed slots, which reach the export as NBD TRIM.

`ramster.swap.record` is what one device is made of and how far it got (a file per device, so
``ramster swap off`` undoes every step in reverse, from another process and after a partial
failure); `ramster.swap.system` runs the steps on this machine. Not here: the NBD export itself
(the node's).
"""
