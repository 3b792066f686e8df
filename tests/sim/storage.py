"""A memory backend that loses, on a simulated crash, every write not yet made durable.

It keeps LevelDB's durability contract: a write is durable once a synced write or a
flush() follows it (a synced write syncs the log, and with it everything before).
A crash rolls the store back to the last durable point, as power loss would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import Any

from spinekv.storage.memory import MemoryBackend

FSYNC_SECONDS = 0.002


class Crashed(RuntimeError):
    """The node this backend handle belonged to has crashed."""


class DurableStore:
    """The node's "disk": current contents plus an undo log back to the last sync."""

    def __init__(self) -> None:
        self.mem = MemoryBackend()
        self._undo: list[tuple[Any, ...]] = []
        self._base = 0  # writes ever dropped from the front of the undo log

    def record_object(self, partition: int, okey: bytes) -> None:
        self._undo.append(("o", partition, okey, self.mem.get(partition, okey)))

    def record_index(self, partition: int, ikeys: list[bytes]) -> None:
        held = self.mem._index.get(partition, set())
        self._undo.append(("i", partition, [(k, k in held) for k in ikeys]))

    def record_meta(self, name: str) -> None:
        self._undo.append(("m", name, self.mem.get_meta(name)))

    def record_queue(self, queue: str, seqs: range) -> None:
        held = self.mem.queues.get(queue, {})
        old = [(seq, held.get(seq)) for seq in seqs]
        self._undo.append(("q", queue, old, self.mem.queue_marks.get(queue)))

    @property
    def position(self) -> int:
        """How many writes were ever made: a mark for sync_upto()."""
        return self._base + len(self._undo)

    def sync(self) -> None:
        self.sync_upto(self.position)

    def sync_upto(self, position: int) -> None:
        """Make the writes before `position` durable (later ones stay volatile)."""
        n = position - self._base
        if n > 0:
            del self._undo[:n]
            self._base += n

    def rollback(self) -> None:
        """Forget every write since the last sync."""
        self._base += len(self._undo)
        for entry in reversed(self._undo):
            if entry[0] == "o":
                _, partition, okey, old = entry
                if old is None:
                    self.mem.delete(partition, okey)
                else:
                    self.mem.put(partition, okey, old)
            elif entry[0] == "q":
                _, queue, old, mark = entry
                held = self.mem.queues.setdefault(queue, {})
                for seq, value in old:
                    if value is None:
                        held.pop(seq, None)
                    else:
                        held[seq] = value
                if mark is None:
                    self.mem.queue_marks.pop(queue, None)
                else:
                    self.mem.queue_marks[queue] = mark
            elif entry[0] == "i":
                _, partition, held = entry
                self.mem.index_update(
                    partition, [k for k, was in held if was], [k for k, was in held if not was]
                )
            else:
                _, name, old = entry
                if old is None:
                    self.mem._meta.pop(name, None)
                else:
                    self.mem.put_meta(name, old)
        self._undo.clear()


class SimBackend:
    """One incarnation's handle on its node's DurableStore; dead once the node crashes."""

    def __init__(self, store: DurableStore) -> None:
        self.store = store
        self.alive = True

    def _live(self) -> MemoryBackend:
        if not self.alive:
            raise Crashed("this node crashed; its backend handle is gone")
        return self.store.mem

    def get(self, partition: int, okey: bytes) -> bytes | None:
        return self._live().get(partition, okey)

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
        mem = self._live()
        self.store.record_object(partition, okey)
        mem.put(partition, okey, value)
        self._index(partition, index_add, index_remove)
        if sync:
            self.store.sync()

    def _index(self, partition: int, add: Iterable[bytes], remove: Iterable[bytes]) -> None:
        add, remove = list(add), list(remove)
        if add or remove:
            self.store.record_index(partition, add + remove)
            self.store.mem.index_update(partition, add, remove)

    def delete(self, partition: int, okey: bytes, *, sync: bool = False) -> None:
        mem = self._live()
        self.store.record_object(partition, okey)
        mem.delete(partition, okey)
        if sync:
            self.store.sync()

    def put_many(
        self,
        partition: int,
        items: list[tuple[bytes, bytes]],
        *,
        index_add: Iterable[bytes] = (),
        index_remove: Iterable[bytes] = (),
    ) -> None:
        for okey, value in items:
            self.put(partition, okey, value)
        self._index(partition, index_add, index_remove)

    def delete_many(
        self, partition: int, okeys: list[bytes], *, index_remove: Iterable[bytes] = ()
    ) -> None:
        for okey in okeys:
            self.delete(partition, okey)
        self._index(partition, (), index_remove)

    def scan(
        self, partition: int, low: bytes, high: bytes, *, index: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        return self._live().scan(partition, low, high, index=index)

    def fold(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        return self._live().fold(partition)

    async def flush(self) -> None:
        self._live()
        # An fsync takes time, and covers only what was written before it began.
        mark = self.store.position
        await asyncio.sleep(FSYNC_SECONDS)
        if self.alive:
            self.store.sync_upto(mark)

    def count(self, partition: int) -> int:
        return self._live().count(partition)

    def partitions(self) -> list[int]:
        return self._live().partitions()

    def drop_partition(self, partition: int) -> None:
        mem = self._live()
        for okey, _ in list(mem.fold(partition)):
            self.store.record_object(partition, okey)
        self.store.record_index(partition, sorted(mem._index.get(partition, ())))
        mem.drop_partition(partition)

    def queue_append(self, queue: str, seq: int, entry: bytes) -> None:
        mem = self._live()
        self.store.record_queue(queue, range(seq, seq + 1))
        mem.queue_append(queue, seq, entry)

    def queue_read(self, queue: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        return self._live().queue_read(queue, start, limit)

    def queue_trim(self, queue: str, first: int, upto: int) -> None:
        mem = self._live()
        self.store.record_queue(queue, range(first, upto + 1))
        mem.queue_trim(queue, first, upto)

    def queue_bounds(self, queue: str) -> tuple[int, int]:
        return self._live().queue_bounds(queue)

    def get_meta(self, name: str) -> bytes | None:
        return self._live().get_meta(name)

    def put_meta(self, name: str, value: bytes) -> None:
        mem = self._live()
        self.store.record_meta(name)
        mem.put_meta(name, value)
        self.store.sync()  # LevelDB's put_meta writes with sync=True

    def close(self) -> None:
        self.alive = False
