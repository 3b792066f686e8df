"""The source side's durable replication queues: fed by acknowledged writes, read by sinks.

Each [[replication.source]] table names a queue kept in the node's backend. The node
that answered a client's write queues it (the coordinator's listeners), so every
acknowledged write is queued once in the cluster. Sequence numbers go on across
restarts; past max_entries the oldest entries are dropped, counted, and left to
full-sync.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .. import tictac
from ..config import ReplSource
from ..dvv import DVVSet
from ..replqueue import (
    BEHIND,
    HOLDS_KEY,
    SCAN_MOST,
    Entry,
    Filter,
    Pending,
    mentions,
    overflow,
    pending,
)
from ..storage.base import Backend
from .coordinator import BKey


class ReplQueue:
    """One queue: its filter and bound, where it starts and ends, and its counters."""

    def __init__(self, source: ReplSource, backend: Backend) -> None:
        self.name = source.name
        self.filter: Filter = source.filter
        self.max_entries = source.max_entries
        self._backend = backend
        self.first, self.end = backend.queue_bounds(self.name)
        self.enqueued = 0  # since start
        self.dropped = 0  # since start: entries pushed out by the bound, for full-sync

    @property
    def depth(self) -> int:
        return self.end - self.first

    def append(self, entry: Entry) -> None:
        drop = overflow(self.depth, self.max_entries)
        if drop:
            self.ack(self.first + drop - 1)
            self.dropped += drop
        self._backend.queue_append(self.name, self.end, entry.encode())
        self.end += 1
        self.enqueued += 1

    def read(self, limit: int) -> list[tuple[int, Entry]]:
        """Up to `limit` (seq, entry) from the head, left in place until acknowledged."""
        raw = self._backend.queue_read(self.name, self.first, limit)
        return [(seq, Entry.decode(value)) for seq, value in raw]

    def holds(self, bkey: BKey, after: float) -> str | None:
        """Why a sink of this queue may still lack a change of the key made no later than
        `after` (wall-clock seconds), or None when it has every such change.

        Entries dropped by the bound are gone and hold nothing back: full-sync repairs
        their keys.
        """
        head = self.read(1)
        match pending(head[0][1].queued_at if head else None, self.depth, after):
            case Pending.CLEAR:
                return None
            case Pending.BEHIND:
                return BEHIND
        raw = (value for _, value in self._backend.queue_read(self.name, self.first, SCAN_MOST))
        return HOLDS_KEY if mentions(raw, bkey.bucket_type, bkey.bucket, bkey.key) else None

    def ack(self, upto: int) -> None:
        """Remove every entry up to sequence number `upto` (inclusive)."""
        upto = min(upto, self.end - 1)
        if upto < self.first:
            return
        self._backend.queue_trim(self.name, self.first, upto)
        self.first = upto + 1


class ReplQueues:
    """Every queue the config names on this node; on_write is a coordinator listener."""

    def __init__(
        self, sources: Sequence[ReplSource], backend: Backend, wall: Callable[[], float]
    ) -> None:
        self.queues = {source.name: ReplQueue(source, backend) for source in sources}
        self._wall = wall

    def on_write(self, bkey: BKey, obj: DVVSet) -> None:
        """Queue an acknowledged write on each queue whose filter takes its key."""
        entry: Entry | None = None
        for queue in self.queues.values():
            if queue.filter.matches(bkey.bucket_type, bkey.bucket, bkey.key):
                if entry is None:
                    clock = tictac.version(obj)
                    entry = Entry(bkey.bucket_type, bkey.bucket, bkey.key, clock, self._wall())
                queue.append(entry)

    def holding(self, bkey: BKey, after: float) -> tuple[str, str] | None:
        """(queue name, why) of the first queue that carries the key and may still hold a
        change of it made no later than `after`; None when none does."""
        for queue in self.queues.values():
            if queue.filter.matches(bkey.bucket_type, bkey.bucket, bkey.key):
                why = queue.holds(bkey, after)
                if why is not None:
                    return queue.name, why
        return None

    def stat_counters(self) -> dict[str, int]:
        """Each queue's depth and totals since start under /stats' names."""
        stats: dict[str, int] = {}
        for name, queue in self.queues.items():
            stats[f"repl_queue_{name}_depth"] = queue.depth
            stats[f"repl_queue_{name}_enqueued"] = queue.enqueued
            stats[f"repl_queue_{name}_dropped"] = queue.dropped
        return stats
