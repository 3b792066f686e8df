"""The Backend interface: per-partition key ranges of encoded objects, plus node metadata."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol


class StorageError(Exception):
    """The backend could not complete a read or write."""


class Backend(Protocol):
    """One node's store. Keys live under their partition so a vnode is a key range.

    Every call is synchronous and quick (a local LevelDB or dict); each write is
    atomic on its own.
    """

    def get(self, partition: int, okey: bytes) -> bytes | None: ...

    def put(
        self,
        partition: int,
        okey: bytes,
        value: bytes,
        *,
        sync: bool = False,
        index_add: Iterable[bytes] = (),
        index_remove: Iterable[bytes] = (),
    ) -> None:
        """Store one object and change its 2i entries (index.py keys) in one atomic write."""
        ...

    def delete(self, partition: int, okey: bytes, *, sync: bool = False) -> None: ...

    def put_many(
        self,
        partition: int,
        items: list[tuple[bytes, bytes]],
        *,
        index_add: Iterable[bytes] = (),
        index_remove: Iterable[bytes] = (),
    ) -> None:
        """Store several (okey, value) pairs and index changes in one atomic write."""
        ...

    def delete_many(
        self, partition: int, okeys: list[bytes], *, index_remove: Iterable[bytes] = ()
    ) -> None:
        """Delete several keys (and index entries) in one atomic write."""
        ...

    def scan(
        self, partition: int, low: bytes, high: bytes, *, index: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) with low <= key < high under `partition`, in key order.

        Over object keys, or with `index` over 2i entry keys (whose values are empty).
        """
        ...

    async def flush(self) -> None:
        """Return once every write made before this call is durable (fsynced).

        Writes themselves never block on the disk; callers that need durability (dw)
        await this, and concurrent callers share one fsync.
        """
        ...

    def fold(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every (okey, value) stored under `partition`, in key order, as of a snapshot taken
        when the first item is read: writes after that do not show (AAE rebuilds rely on it)."""
        ...

    def count(self, partition: int) -> int:
        """How many objects `partition` holds (a key scan; for progress displays)."""
        ...

    def partitions(self) -> list[int]:
        """Partitions that hold at least one object."""
        ...

    def drop_partition(self, partition: int) -> None:
        """Delete every object and index entry of `partition`."""
        ...

    def queue_append(self, queue: str, seq: int, entry: bytes) -> None:
        """Store entry `seq` of a replication queue, unsynced (as a write without dw)."""
        ...

    def queue_read(self, queue: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` (seq, entry) of a queue with seq >= start, oldest first."""
        ...

    def queue_trim(self, queue: str, first: int, upto: int) -> None:
        """Remove a queue's entries first..upto (inclusive) and remember `upto` as trimmed,
        in one write, so the queue's sequence numbers go on past it after a restart."""
        ...

    def queue_bounds(self, queue: str) -> tuple[int, int]:
        """(first, end): the queue holds entries first..end-1 (first == end when empty);
        end is one past the last sequence number ever appended or trimmed, at least 1."""
        ...

    def get_meta(self, name: str) -> bytes | None: ...

    def put_meta(self, name: str, value: bytes, *, sync: bool = True) -> None:
        """Store node metadata; fsynced unless sync=False (then it survives a process crash,
        not a power cut)."""
        ...

    def close(self) -> None: ...
