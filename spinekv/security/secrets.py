"""Salted, slow hashes of user secrets (scrypt), and the cluster secret file.

A stored secret is `scrypt$<log2 n>$<r>$<p>$<salt>$<hash>` (salt and hash in
unpadded urlsafe base64). scrypt is memory-hard, so a stolen cluster.toml or
user table costs an attacker ~16 MiB and tens of milliseconds per guess; the
HTTP layer caches successful checks so a request does not pay that each time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets as _random
import stat
from pathlib import Path

__all__ = [
    "DEMO_TOKENS",
    "SecretError",
    "cluster_secret",
    "derive_key",
    "hash_secret",
    "is_hashed",
    "make_cluster_secret",
    "verify_secret",
]

_SCHEME = "scrypt"
# 2**14 * 8 * 128 bytes = 16 MiB of memory per hash: OWASP's scrypt floor.
_LOG2_N, _R, _P = 14, 8, 1
_SALT_BYTES = 16
_HASH_BYTES = 32
# The smallest cluster secret accepted: 128 bits.
MIN_SECRET_BYTES = 16
# The documented tokens of the local cluster's demo users; a node bound to an address
# other than loopback refuses to start while any user still verifies with one of them.
DEMO_TOKENS = ("clinical-demo-token", "admin-demo-token", "service-demo-token")


class SecretError(ValueError):
    """A stored hash or a cluster secret file is malformed, missing or unsafe."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r * p, dklen=_HASH_BYTES
    )


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of `secret`, in the stored form."""
    if not secret:
        raise SecretError("an empty secret cannot be hashed")
    salt = _random.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = _scrypt(secret, salt, _LOG2_N, _R, _P)
    return f"{_SCHEME}${_LOG2_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        raise SecretError("not a scrypt$<log2 n>$<r>$<p>$<salt>$<hash> string")
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise SecretError("malformed numbers or base64 in a scrypt hash") from None
    # Bounds keep a hostile hash from asking for gigabytes (or nothing) of work.
    if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 4):
        raise SecretError(f"scrypt parameters out of range: n=2**{log2_n}, r={r}, p={p}")
    if len(salt) < 8 or len(digest) < 16:
        raise SecretError("scrypt salt or hash too short")
    return log2_n, r, p, salt, digest


def is_hashed(stored: str) -> bool:
    """Whether `stored` is a well-formed stored hash."""
    try:
        _parse(stored)
    except SecretError:
        return False
    return True


def verify_secret(secret: str, stored: str) -> bool:
    """Whether `secret` hashes to `stored` (constant-time compare; False when malformed)."""
    try:
        log2_n, r, p, salt, digest = _parse(stored)
    except SecretError:
        return False
    return hmac.compare_digest(_scrypt(secret, salt, log2_n, r, p)[: len(digest)], digest)


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A key for one purpose (internode handshake, record MACs, audit chain) from the secret,
    so no two uses share a key."""
    return hmac.new(secret, b"spinekv key: " + purpose.encode(), hashlib.sha256).digest()


def make_cluster_secret(path: Path) -> bool:
    """Write a fresh random cluster secret to `path` (mode 0600) unless one is there.

    Returns True when it wrote one. Safe against a concurrent writer: the file is created
    exclusively, so two `spinekv up` runs never leave nodes with different secrets.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(_random.token_hex(32) + "\n")
    return True


def cluster_secret(path: Path) -> bytes:
    """Read the cluster secret file: at least 16 bytes, readable by its owner only."""
    try:
        info = path.stat()
        text = path.read_bytes().strip()
    except FileNotFoundError:
        raise SecretError(
            f"no cluster secret at {path} (`spinekv up` makes one; copy it to every host)"
        ) from None
    except OSError as exc:
        raise SecretError(f"cannot read the cluster secret {path}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"the cluster secret {path} is readable by others (mode "
            f"{stat.S_IMODE(info.st_mode):o}); chmod 600 it"
        )
    if len(text) < MIN_SECRET_BYTES:
        raise SecretError(f"the cluster secret {path} is shorter than {MIN_SECRET_BYTES} bytes")
    return text
