"""The storage key layout, owned here alone: object keys, 2i entry keys and their prefixes.

Inside a partition every key is made of length-prefixed parts, so that no two
triples collide and every bucket (and every index of a bucket) is one
contiguous key range:

    object key:  len type | type | len bucket | bucket | key
    2i entry:    len type | type | len bucket | bucket | len field | field | term | key

Replication queues sit outside partitions, one key range per queue:

    queue entry: len name | name | sequence (8 bytes, big-endian, so keys sort in order)
    queue mark:  len name | name      (the last sequence number trimmed; sorts first)

The term encoding (order-preserving, self-delimiting) is index.py's; this module
only places it. Backends put the partition in front of these keys themselves.
"""

from __future__ import annotations

import struct

_LEN = struct.Struct(">H")
_SEQ = struct.Struct(">Q")
MAX_PART = 0xFFFF


class KeyLayoutError(ValueError):
    """A bucket type, bucket or index name too long for the key layout."""


def _lp(part: bytes) -> bytes:
    if len(part) > MAX_PART:
        raise KeyLayoutError("bucket type, bucket or index name longer than 65535 bytes")
    return _LEN.pack(len(part)) + part


def object_key(bucket_type: bytes, bucket: bytes, key: bytes) -> bytes:
    """The storage key of (type, bucket, key)."""
    return _LEN.pack(len(bucket_type)) + bucket_type + _LEN.pack(len(bucket)) + bucket + key


def split_object_key(okey: bytes) -> tuple[bytes, bytes, bytes]:
    """(type, bucket, key) of an object key."""
    (tlen,) = _LEN.unpack_from(okey, 0)
    btype = okey[2 : 2 + tlen]
    (blen,) = _LEN.unpack_from(okey, 2 + tlen)
    start = 4 + tlen
    return btype, okey[start : start + blen], okey[start + blen :]


def bucket_prefix(bucket_type: bytes, bucket: bytes | None = None) -> bytes:
    """The object-key prefix of a bucket (or, without one, of a whole bucket type)."""
    return _lp(bucket_type) + (b"" if bucket is None else _lp(bucket))


def bucket_of(okey: bytes, type_prefix: bytes) -> bytes:
    """The bucket of an object key that starts with `type_prefix` (a bucket_prefix(type))."""
    start = len(type_prefix)
    (blen,) = _LEN.unpack_from(okey, start)
    return okey[start + 2 : start + 2 + blen]


def field_prefix(bucket_type: bytes, bucket: bytes, field: str) -> bytes:
    """The key prefix of every entry of one index of one bucket."""
    return _lp(bucket_type) + _lp(bucket) + _lp(field.encode())


def entry_key(
    bucket_type: bytes, bucket: bytes, field: str, encoded_term: bytes, key: bytes
) -> bytes:
    """The key of one 2i entry: the index's prefix, the encoded term, then the object's key."""
    return field_prefix(bucket_type, bucket, field) + encoded_term + key


def successor(prefix: bytes) -> bytes:
    """The smallest byte string greater than every string that starts with `prefix`."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\xff" * (len(prefix) + 1)  # only reached for all-0xFF prefixes
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def queue_mark_key(queue: str) -> bytes:
    """The key of a queue's trim mark; also the prefix of every entry key of the queue."""
    return _lp(queue.encode())


def queue_entry_key(queue: str, seq: int) -> bytes:
    """The key of entry `seq` of a replication queue."""
    return queue_mark_key(queue) + _SEQ.pack(seq)


def queue_seq(qkey: bytes, queue: str) -> int:
    """The sequence number of a queue entry key of `queue`."""
    (seq,) = _SEQ.unpack_from(qkey, len(queue_mark_key(queue)))
    return seq


def encode_seq(seq: int) -> bytes:
    return _SEQ.pack(seq)


def decode_seq(raw: bytes) -> int:
    (seq,) = _SEQ.unpack(raw)
    return seq
