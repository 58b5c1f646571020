"""Membership: which nodes form the cluster, their stable numbers, and cluster-wide params.

`model` defines the values and the `Membership` interface; `etcd` implements it over etcd
(create-if-absent node numbers, leased node entries, watches that survive an etcd restart);
`static` implements it for clusters without etcd. Not here: what nodes say to each other
(`ramster.remote`), the node itself (`ramster.node`).
"""
