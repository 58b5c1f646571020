"""Trust material: who a caller is, the files that prove it, and the seal on pages that leave
their origin (issue 12).

- `identity`: the roles (node, client, admin, and "local" for an unproven unix-socket caller),
  `Identity`, and how a certificate names one (subject OU = role, CN = name);
- `pki`: the cluster CA and the certificates it signs, built in memory (ECDSA P-256);
- `tokens`: bearer tokens the CA's key signs and a node checks with the CA certificate only;
- `files`: what ``ramster certs`` writes into a folder and reads back (modes, no overwrites);
- `seal`: AES-GCM on a packed page, bound to its origin, pool, key and version.

Not here: the TLS settings both ends of a call load (`ramster.wire.tls`), how a server reads the
caller's certificate from a call (`ramster.rpc`), the ``ramster certs`` command
(`ramster.cli.certs`), and every decision about what an identity may do.
"""
