"""Record integrity (pure): a keyed MAC sealed onto each stored record, bound to where it is kept.

A sealed value is `hmac-sha256:<hex MAC>\\n<body>`. The MAC (HMAC-SHA256 under a key derived from
the cluster secret) covers the bucket type, bucket and key as well as the body, so a changed
body fails, and so does a valid record copied under another patient's key. Only a holder of the
cluster secret can write a record that verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

PREFIX = b"hmac-sha256:"
_MAC_HEX = 64
_LEN = struct.Struct(">I")


class IntegrityError(ValueError):
    """A stored value that is not sealed, or whose MAC does not verify."""


def _where(bucket_type: str, bucket: str, key: str) -> bytes:
    # Length-prefixed, so no two (type, bucket, key) triples give the same bytes.
    parts = [p.encode() for p in (bucket_type, bucket, key)]
    return b"".join(_LEN.pack(len(p)) + p for p in parts)


def record_mac(mac_key: bytes, bucket_type: str, bucket: str, key: str, body: bytes) -> bytes:
    """The MAC of `body` stored under (bucket_type, bucket, key)."""
    message = b"spinekv record\x00" + _where(bucket_type, bucket, key) + body
    return hmac.new(mac_key, message, hashlib.sha256).digest()


def seal(mac_key: bytes, bucket_type: str, bucket: str, key: str, body: bytes) -> bytes:
    """The value to store: `body` with its MAC in front."""
    mac = record_mac(mac_key, bucket_type, bucket, key, body)
    return PREFIX + mac.hex().encode() + b"\n" + body


def unseal(mac_key: bytes, bucket_type: str, bucket: str, key: str, value: bytes) -> bytes:
    """The body of a sealed value; IntegrityError when it is not sealed or its MAC fails."""
    head, newline, body = value.partition(b"\n")
    if not newline or not head.startswith(PREFIX) or len(head) != len(PREFIX) + _MAC_HEX:
        raise IntegrityError("it carries no MAC")
    try:
        mac = bytes.fromhex(head[len(PREFIX) :].decode("ascii"))
    except ValueError:
        raise IntegrityError("its MAC is malformed") from None
    if not hmac.compare_digest(mac, record_mac(mac_key, bucket_type, bucket, key, body)):
        raise IntegrityError("its MAC does not verify")
    return body
