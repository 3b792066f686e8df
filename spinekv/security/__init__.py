"""Security: secret hashing, the cluster secret, users, grants, sources, TLS, the audit chain."""
