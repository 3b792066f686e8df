"""Stored objects: a DVVSet of contents (value + metadata, or a tombstone) and its codec (pure)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgpack

from . import dvv
from .dvv import DVVSet, VersionVector

FORMAT_VERSION = 1


class CodecError(ValueError):
    """Bytes that are not a valid encoded object or causal context."""


@dataclass(frozen=True, slots=True)
class Content:
    """One sibling: a value and its metadata, or a tombstone when `deleted`."""

    value: bytes
    content_type: str = "application/octet-stream"
    last_modified_us: int = 0
    deleted: bool = False
    meta: tuple[tuple[str, str], ...] = field(default=())
    indexes: tuple[tuple[str, str | int], ...] = field(default=())
    # Riak links: (bucket, key, tag), with the bucket type implied by the object's own.
    links: tuple[tuple[str, str, str], ...] = field(default=())

    @property
    def vtag(self) -> str:
        """A stable tag naming this sibling (Riak's vtag), derived from its contents."""
        digest = hashlib.blake2b(digest_size=12)
        digest.update(_pack_content(self))
        return base64.b32encode(digest.digest()).decode().rstrip("=").lower()


def tombstone(last_modified_us: int) -> Content:
    return Content(b"", "application/octet-stream", last_modified_us, True)


def _pack_content(c: Content) -> bytes:
    return msgpack.packb(_content_fields(c), use_bin_type=True)


def _content_fields(c: Content) -> list:
    fields = [
        c.value,
        c.content_type,
        c.last_modified_us,
        c.deleted,
        [list(m) for m in c.meta],
        [list(i) for i in c.indexes],
    ]
    if c.links:
        # Only when present, so contents without links keep their encoding (and vtag).
        fields.append([list(link) for link in c.links])
    return fields


def _content_from(fields: list) -> Content:
    value, ctype, lastmod, deleted, meta, indexes, *rest = fields
    if len(rest) > 1:
        raise CodecError(f"content has {len(fields)} fields")
    links = rest[0] if rest else []
    return Content(
        bytes(value),
        str(ctype),
        int(lastmod),
        bool(deleted),
        tuple((str(k), str(v)) for k, v in meta),
        tuple((str(k), v) for k, v in indexes),
        tuple((str(b), str(k), str(t)) for b, k, t in links),
    )


def encode(obj: DVVSet) -> bytes:
    """Serialise an object for storage and for the wire."""
    entries = [[a, n, [_content_fields(c) for c in cs]] for a, n, cs in obj.entries]
    return msgpack.packb([FORMAT_VERSION, entries], use_bin_type=True)


def decode(data: bytes) -> DVVSet:
    try:
        version, entries = msgpack.unpackb(data, raw=False)
        if version != FORMAT_VERSION:
            raise CodecError(f"unknown object format version {version!r}")
        return DVVSet(
            tuple((str(a), int(n), tuple(_content_from(c) for c in cs)) for a, n, cs in entries)
        )
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CodecError(f"malformed object: {exc}") from None


def _newest(c: Content) -> tuple:
    # Newest timestamp wins; the vtag breaks ties so every replica picks the same one.
    return (c.last_modified_us, c.vtag)


def write(
    stored: DVVSet | None,
    context: Mapping[str, int],
    content: Content,
    actor: str,
    *,
    allow_mult: bool,
    last_write_wins: bool = False,
) -> DVVSet:
    """The object after `actor` applies a client write that read `context`."""
    base = stored or dvv.EMPTY
    if last_write_wins:
        # No causality at all: the write supersedes whatever this replica holds.
        context = dvv.join(base)
    updated = dvv.update(base, context, content, actor)
    return updated if allow_mult else dvv.lww(updated, _newest)


def merge(a: DVVSet | None, b: DVVSet, *, allow_mult: bool) -> DVVSet:
    """Merge a replica's copy with an incoming one."""
    merged = b if a is None else dvv.sync(a, b)
    return merged if allow_mult else dvv.lww(merged, _newest)


def merge_all(objs: list[DVVSet], *, allow_mult: bool = True) -> DVVSet:
    merged = dvv.sync_all(objs)
    return merged if allow_mult else dvv.lww(merged, _newest)


def contents(obj: DVVSet) -> list[Content]:
    return dvv.values(obj)


def live_contents(obj: DVVSet) -> list[Content]:
    """Siblings that are not tombstones."""
    return [c for c in dvv.values(obj) if not c.deleted]


def is_tombstone(obj: DVVSet) -> bool:
    return all(c.deleted for c in dvv.values(obj))


def deleted_flags(data: bytes) -> list[bool]:
    """Each sibling's `deleted` flag of an encoded object, read without building the object.

    Listings and folds ask this of every object they pass; decoding one costs several
    times more (strings decoded, Content and DVVSet built).
    """
    try:
        version, entries = msgpack.unpackb(data, raw=True)
        if version != FORMAT_VERSION:
            raise CodecError(f"unknown object format version {version!r}")
        return [bool(c[3]) for _, _, cs in entries for c in cs]
    except CodecError:
        raise
    except (ValueError, TypeError, IndexError, msgpack.UnpackException) as exc:
        raise CodecError(f"malformed object: {exc}") from None


def is_encoded_tombstone(data: bytes) -> bool:
    """is_tombstone(decode(data)), without decoding."""
    return all(deleted_flags(data))


def context(obj: DVVSet) -> VersionVector:
    return dvv.join(obj)


def encode_context(vv: Mapping[str, int]) -> str:
    """The opaque X-Riak-Vclock string a client sends back on its next write."""
    packed = msgpack.packb(sorted(vv.items()), use_bin_type=True)
    return base64.b64encode(packed).decode("ascii")


def decode_context(text: str) -> VersionVector:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        pairs = msgpack.unpackb(raw, raw=False)
        vv = {}
        for actor, n in pairs:
            if not isinstance(actor, str) or not isinstance(n, int) or n < 0:
                raise CodecError("bad entry")
            vv[actor] = n
        return vv
    except (ValueError, TypeError, binascii.Error, UnicodeError, msgpack.UnpackException):
        raise CodecError("X-Riak-Vclock is not a causal context this cluster issued") from None
