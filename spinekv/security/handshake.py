"""The internode handshake's decisions: nonces, HMAC proofs both ways, replay memory.

A dialler opens every link with HELLO {name, ..., nonce_d}. The acceptor judges
the hello (cluster, protocol version, a known node name, a nonce never seen)
and answers CHALLENGE {name, nonce_a, proof_a}; the dialler checks proof_a (the
acceptor holds the cluster secret and is the node it meant to reach) and sends
PROOF {proof_d}; the acceptor checks proof_d and only then reads requests.

Each proof is an HMAC, under a key derived from the cluster secret, of one
transcript naming the direction, the cluster, both nodes and both nonces, so a
proof made for one link, direction or pair of nonces is worth nothing on another.
The acceptor's fresh nonce already defeats a replayed PROOF; remembering the
dialler nonces of recent handshakes also refuses a replayed HELLO before any
challenge is spent on it. The transport (transport/tcp.py) does the I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from typing import Any

import msgpack

from .secrets import derive_key

__all__ = [
    "NONCE_BYTES",
    "ReplayGuard",
    "accept_proof",
    "dial_proof",
    "handshake_key",
    "new_nonce",
    "proof_matches",
    "read_challenge",
    "read_hello",
    "read_proof",
]

NONCE_BYTES = 32
_PURPOSE = "peer handshake"


def handshake_key(secret: bytes) -> bytes:
    """The key every proof is made with (never the cluster secret itself)."""
    return derive_key(secret, _PURPOSE)


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def _proof(
    key: bytes,
    direction: str,
    cluster: str,
    dialler: str,
    acceptor: str,
    nonce_d: bytes,
    nonce_a: bytes,
) -> bytes:
    # msgpack gives every field a length, so no two transcripts encode alike.
    transcript = msgpack.packb(
        ["spinekv peer", direction, cluster, dialler, acceptor, nonce_d, nonce_a],
        use_bin_type=True,
    )
    return hmac.new(key, transcript, hashlib.sha256).digest()


def accept_proof(
    key: bytes, cluster: str, dialler: str, acceptor: str, nonce_d: bytes, nonce_a: bytes
) -> bytes:
    """What the acceptor sends to show it holds the secret (proof_a)."""
    return _proof(key, "accept", cluster, dialler, acceptor, nonce_d, nonce_a)


def dial_proof(
    key: bytes, cluster: str, dialler: str, acceptor: str, nonce_d: bytes, nonce_a: bytes
) -> bytes:
    """What the dialler sends to show it holds the secret (proof_d)."""
    return _proof(key, "dial", cluster, dialler, acceptor, nonce_d, nonce_a)


def proof_matches(expected: bytes, given: Any) -> bool:
    """Constant-time: a wrong proof tells nothing of how close it came."""
    return isinstance(given, bytes) and hmac.compare_digest(expected, given)


def _nonce(value: Any) -> bytes | None:
    return value if isinstance(value, bytes) and len(value) == NONCE_BYTES else None


def read_hello(body: Any) -> tuple[dict[str, Any], bytes] | str:
    """A dialler's hello and its nonce, or why it is malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
        return "hello without a node name"
    nonce = _nonce(body.get("nonce"))
    if nonce is None:
        return f"hello from {body['name']!r} without a {NONCE_BYTES}-byte nonce"
    return body, nonce


def read_challenge(body: Any) -> tuple[str, bytes, bytes] | str:
    """An acceptor's challenge as (name, nonce_a, proof_a), or why it is malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return "challenge without a node name"
    nonce = _nonce(body.get("nonce"))
    proof = body.get("proof")
    if nonce is None or not isinstance(proof, bytes):
        return "challenge without a nonce and a proof"
    return body["name"], nonce, proof


def read_proof(body: Any) -> bytes | None:
    """The dialler's proof, if the frame carries one."""
    if isinstance(body, dict) and isinstance(body.get("proof"), bytes):
        return body["proof"]
    return None


class ReplayGuard:
    """The dialler nonces of recent handshakes, bounded in count and in age.

    A nonce is remembered once its handshake succeeded, so strangers cannot churn
    the memory; at most `capacity` nonces (~100 bytes each) are kept, each for
    `ttl` seconds. A replay older than that still fails: the acceptor's fresh
    nonce makes the recorded proof wrong.
    """

    def __init__(self, *, capacity: int = 4096, ttl: float = 600.0) -> None:
        if capacity < 1 or ttl <= 0:
            raise ValueError("need capacity >= 1 and ttl > 0")
        self.capacity = capacity
        self.ttl = ttl
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def _expire(self, now: float) -> None:
        seen = self._seen
        while seen:
            nonce, at = next(iter(seen.items()))
            if now - at < self.ttl and len(seen) <= self.capacity:
                break
            del seen[nonce]

    def seen(self, nonce: bytes, now: float) -> bool:
        self._expire(now)
        return nonce in self._seen

    def remember(self, nonce: bytes, now: float) -> None:
        self._seen[nonce] = now
        self._seen.move_to_end(nonce)
        self._expire(now)

    def __len__(self) -> int:
        return len(self._seen)
