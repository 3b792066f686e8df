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
from ..replqueue import Entry, Filter, overflow
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

    def stat_counters(self) -> dict[str, int]:
        """Each queue's depth and totals since start under /stats' names."""
        stats: dict[str, int] = {}
        for name, queue in self.queues.items():
            stats[f"repl_queue_{name}_depth"] = queue.depth
            stats[f"repl_queue_{name}_enqueued"] = queue.enqueued
            stats[f"repl_queue_{name}_dropped"] = queue.dropped
        return stats
