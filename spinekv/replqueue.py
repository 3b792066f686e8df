"""Pure rules of the source's replication queues: filters, the bound, and the entry codec.

A filter names what a queue carries, written as cluster.toml spells it:

    "any"               every write
    "type:T"            every bucket of bucket type T
    "bucket:T/B"        bucket B of type T
    "prefix:T/B/P"      keys of bucket T/B that start with P (P may contain '/')

A queue entry is (type, bucket, key, clock digest, enqueue time): enough for a sink to
fetch the current object and to skip it when it already holds that clock.

Reaping a tombstone asks each queue whether a sink may still lack the delete (`pending`,
`mentions`, `hold_reason`): entries are acknowledged in order and only once their sink
applied them, so a queue whose oldest entry is younger than the delete has passed it on.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

import msgpack

ANY = "any"
FILTER_FORMS = '"any", "type:T", "bucket:T/B" or "prefix:T/B/P"'
# Queue names appear in /stats names (repl_queue_<name>_depth) and in commands.
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class FilterError(ValueError):
    """A filter that is not one of the forms in FILTER_FORMS."""


@dataclass(frozen=True, slots=True)
class Filter:
    """What a queue (or a full-sync scope) covers; None parts match anything."""

    bucket_type: bytes | None = None
    bucket: bytes | None = None
    prefix: bytes | None = None

    def matches(self, bucket_type: bytes, bucket: bytes, key: bytes) -> bool:
        return (
            (self.bucket_type is None or self.bucket_type == bucket_type)
            and (self.bucket is None or self.bucket == bucket)
            and (self.prefix is None or key.startswith(self.prefix))
        )

    @property
    def kind(self) -> str:
        if self.prefix is not None:
            return "prefix"
        if self.bucket is not None:
            return "bucket"
        return "any" if self.bucket_type is None else "type"


def parse_filter(text: str) -> Filter:
    """The Filter a cluster.toml string names; FilterError says which form was expected."""
    if text == ANY:
        return Filter()
    kind, colon, rest = text.partition(":")
    parts = rest.split("/", 2)
    wanted = {"type": 1, "bucket": 2, "prefix": 3}.get(kind)
    if not colon or wanted is None or len(parts) != wanted or not all(parts[:2]):
        raise FilterError(f"{text!r} is not a filter: expected {FILTER_FORMS}")
    if wanted == 3 and not parts[2]:
        raise FilterError(f"{text!r}: a prefix filter needs a non-empty prefix")
    encoded = [part.encode() for part in parts]
    return Filter(*encoded)


def overflow(depth: int, max_entries: int) -> int:
    """How many of the oldest entries to drop so that one more fits under max_entries."""
    return max(0, depth + 1 - max_entries)


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued change: which key, its clock digest (tictac.version) and when it was queued."""

    bucket_type: bytes
    bucket: bytes
    key: bytes
    clock: bytes
    queued_at: float

    def encode(self) -> bytes:
        fields = [self.bucket_type, self.bucket, self.key, self.clock, self.queued_at]
        return msgpack.packb(fields, use_bin_type=True)

    @staticmethod
    def decode(raw: bytes) -> Entry:
        bucket_type, bucket, key, clock, queued_at = msgpack.unpackb(raw, raw=True)
        return Entry(bucket_type, bucket, key, clock, queued_at)


# A reap looks through at most this many of a queue's entries for its key; past that the
# queue is too far behind to be worth reading for every tombstone.
SCAN_MOST = 10_000
HOLDS_KEY = "still holds a change of the key (its sink has not applied it)"
BEHIND = f"is more than {SCAN_MOST:,} entries behind"


class Pending(enum.Enum):
    """What a queue's head says of a change made before a given time."""

    CLEAR = "clear"  # nothing from before it is left: every earlier entry is acknowledged
    SCAN = "scan"  # few enough entries to look through for the key
    BEHIND = "behind"  # too many to look through: assume it is there


def pending(oldest_queued_at: float | None, depth: int, after: float) -> Pending:
    """Whether a queue (oldest entry queued at `oldest_queued_at`, None when empty, `depth`
    entries) may still hold a change queued no later than `after`."""
    if oldest_queued_at is None or oldest_queued_at > after:
        return Pending.CLEAR
    return Pending.SCAN if depth <= SCAN_MOST else Pending.BEHIND


def mentions(raw_entries: Iterable[bytes], bucket_type: bytes, bucket: bytes, key: bytes) -> bool:
    """Whether any encoded entry is of the key (a change a sink has not applied yet)."""
    wanted = (bucket_type, bucket, key)
    for raw in raw_entries:
        # Most entries are of other keys: a byte search skips them without decoding.
        if key in raw:
            entry = Entry.decode(raw)
            if (entry.bucket_type, entry.bucket, entry.key) == wanted:
                return True
    return False


def hold_reason(queue: str, node: str, why: str) -> str:
    """A reap's deferral naming the queue that holds it back, e.g. "replication queue 'dr'
    on n2 is more than 10,000 entries behind"."""
    return f"replication queue {queue!r} on {node} {why}"
