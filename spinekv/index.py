"""Secondary indexes (pure): index keys, their order-preserving term encoding, and queries.

An index entry is a storage key with no value, kept in the same write batch as
its object; storage/keys.py lays it out (type, bucket, field, term, object key).
Terms encode so that byte order is term order and each term knows where it ends,
so a range query is one contiguous scan and the object key can be cut off the end:

- `_bin` terms: the bytes with 0x00 escaped as 0x00 0xFF, closed by 0x00 0x00;
- `_int` terms: a sign byte, a length byte (inverted for negatives), then the
  magnitude (inverted for negatives), which orders integers of any size.

An object's entries are the union of the indexes of its live siblings, as in
Riak; a tombstone has none.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

import msgpack

from .dvv import DVVSet
from .object import live_contents
from .storage import keys
from .storage.keys import bucket_prefix, field_prefix, successor

Term = str | int

BUCKET_INDEX = "$bucket"
KEY_INDEX = "$key"
SPECIAL = (BUCKET_INDEX, KEY_INDEX)


class IndexError_(ValueError):
    """A malformed index name, term or query; the message says what is wrong."""


def is_int_field(field: str) -> bool:
    return field.endswith("_int")


def check_field(field: str) -> None:
    if field in SPECIAL:
        return
    if not (field.endswith("_bin") or field.endswith("_int")) or len(field) <= 4:
        raise IndexError_(f"index {field!r}: name must end in _bin or _int")
    if len(field.encode()) > 0xFFFF:
        raise IndexError_("index name too long")


def parse_term(field: str, raw: str) -> Term:
    """A term given as text (a URL segment or header value) in the field's type."""
    if is_int_field(field):
        text = raw.strip()
        if not re.fullmatch(r"[+-]?\d+", text):
            raise IndexError_(f"could not parse {raw!r} as an integer for index {field!r}")
        return int(text)
    return raw


def encode_term(term: Term) -> bytes:
    if isinstance(term, int):
        mag = abs(term).to_bytes((abs(term).bit_length() + 7) // 8, "big")
        if len(mag) > 254:
            raise IndexError_("integer index term is too large (over 254 bytes)")
        if term >= 0:
            return b"\x01" + bytes([len(mag)]) + mag
        return b"\x00" + bytes([255 - len(mag)]) + bytes(255 - b for b in mag)
    return term.encode(errors="surrogateescape").replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def decode_term(data: bytes, start: int, is_int: bool) -> tuple[Term, int]:
    """(term, offset just past it) for the term encoded at data[start:]."""
    if is_int:
        sign, length = data[start], data[start + 1]
        if sign == 1:
            end = start + 2 + length
            return int.from_bytes(data[start + 2 : end], "big"), end
        length = 255 - length
        end = start + 2 + length
        return -int.from_bytes(bytes(255 - b for b in data[start + 2 : end]), "big"), end
    out = bytearray()
    i = start
    while True:
        j = data.index(b"\x00", i)
        out += data[i:j]
        if data[j + 1] == 0:
            return out.decode(errors="surrogateescape"), j + 2
        out.append(0)  # an escaped 0x00 0xFF
        i = j + 2


def entry_key(bucket_type: bytes, bucket: bytes, field: str, term: Term, key: bytes) -> bytes:
    return keys.entry_key(bucket_type, bucket, field, encode_term(term), key)


def entries(bucket_type: bytes, bucket: bytes, key: bytes, obj: DVVSet | None) -> set[bytes]:
    """The index entries an object (or None, for no object) should have."""
    if obj is None:
        return set()
    out = set()
    for content in live_contents(obj):
        for field, term in content.indexes:
            out.add(entry_key(bucket_type, bucket, field, term, key))
    return out


# ------------------------------------------------------------------ queries


@dataclass(frozen=True)
class Query:
    """One 2i query: an exact match when start == end, else an inclusive range."""

    bucket_type: bytes
    bucket: bytes
    field: str
    start: Term
    end: Term
    return_terms: bool = False
    max_results: int | None = None
    continuation: tuple[Term, bytes] | None = None  # resume after this (term, key)
    term_regex: str | None = None

    def __post_init__(self) -> None:
        check_field(self.field)
        if self.max_results is not None and self.max_results < 1:
            raise IndexError_("max_results must be a positive integer")
        if self.term_regex is not None:
            try:
                re.compile(self.term_regex)
            except re.error as exc:
                raise IndexError_(f"term_regex {self.term_regex!r}: {exc}") from None
        if isinstance(self.start, int) != isinstance(self.end, int):
            raise IndexError_("range start and end must be of the same type")
        if self.start > self.end:  # type: ignore[operator]
            raise IndexError_("range start is after its end")

    def to_wire(self) -> list:
        return [
            self.bucket_type,
            self.bucket,
            self.field,
            self.start,
            self.end,
            self.return_terms,
            self.max_results,
            list(self.continuation) if self.continuation else None,
            self.term_regex,
        ]

    @classmethod
    def from_wire(cls, wire: list) -> Query:
        btype, bucket, field, start, end, terms, max_results, cont, regex = wire
        return cls(
            btype,
            bucket,
            field,
            start,
            end,
            terms,
            max_results,
            (cont[0], cont[1]) if cont else None,
            regex,
        )


def scan_bounds(q: Query) -> tuple[bytes, bytes]:
    """[low, high) over index keys (or, for $key/$bucket, over object keys) for `q`."""
    if q.field == BUCKET_INDEX:
        prefix = bucket_prefix(q.bucket_type, q.bucket)
        low = prefix + (q.continuation[1] + b"\x00" if q.continuation else b"")
        return low, successor(prefix)
    if q.field == KEY_INDEX:
        prefix = bucket_prefix(q.bucket_type, q.bucket)
        low = prefix + str(q.start).encode()
        if q.continuation:
            low = max(low, prefix + q.continuation[1] + b"\x00")
        return low, prefix + str(q.end).encode() + b"\x00"
    prefix = field_prefix(q.bucket_type, q.bucket, q.field)
    low = prefix + encode_term(q.start)
    if q.continuation:
        term, key = q.continuation
        low = max(low, prefix + encode_term(term) + key + b"\x00")
    return low, successor(prefix + encode_term(q.end))


def split_entry(q: Query, ikey: bytes) -> tuple[Term, bytes]:
    """(term, object key) of a scanned entry: an index key, or for $bucket/$key an object key."""
    if q.field in SPECIAL:
        key = ikey[len(bucket_prefix(q.bucket_type, q.bucket)) :]
        return key.decode(errors="surrogateescape"), key
    start = len(field_prefix(q.bucket_type, q.bucket, q.field))
    term, end = decode_term(ikey, start, is_int_field(q.field))
    return term, ikey[end:]


def term_matches(q: Query, term: Term) -> bool:
    if q.term_regex is None:
        return True
    return re.search(q.term_regex, str(term)) is not None


def merge_results(q: Query, parts: Iterable[list]) -> tuple[list[tuple[Term, bytes]], bool]:
    """Combine the vnodes' (term, key) lists into the answer; True when a page was cut short."""
    merged = sorted({(t, bytes(k)) for part in parts for t, k in part}, key=_order)
    if q.max_results is not None and len(merged) >= q.max_results:
        return merged[: q.max_results], True
    return merged, False


def _order(pair: tuple[Term, bytes]) -> tuple:
    term, key = pair
    return (isinstance(term, str), term, key)


def encode_continuation(pair: tuple[Term, bytes]) -> str:
    return base64.urlsafe_b64encode(msgpack.packb([pair[0], pair[1]], use_bin_type=True)).decode()


def decode_continuation(text: str, field: str) -> tuple[Term, bytes]:
    try:
        term, key = msgpack.unpackb(base64.urlsafe_b64decode(text.encode("ascii")), raw=False)
    except (ValueError, TypeError, binascii.Error, UnicodeError, msgpack.UnpackException):
        raise IndexError_("continuation is not one this cluster issued") from None
    wants_int = is_int_field(field)
    if not isinstance(key, bytes) or isinstance(term, bool):
        raise IndexError_("continuation is not one this cluster issued")
    if field not in SPECIAL and isinstance(term, int) != wants_int:
        raise IndexError_("continuation does not belong to this index")
    if not isinstance(term, int | str):
        raise IndexError_("continuation is not one this cluster issued")
    return term, key
