"""In-memory backend: the same contract as LevelDB, for tests and the simulation."""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Iterable, Iterator


class MemoryBackend:
    def __init__(self) -> None:
        self._parts: dict[int, dict[bytes, bytes]] = {}
        self._index: dict[int, set[bytes]] = {}
        self._meta: dict[str, bytes] = {}
        self.queues: dict[str, dict[int, bytes]] = {}
        self.queue_marks: dict[str, int] = {}  # the last sequence number trimmed, per queue

    def get(self, partition: int, okey: bytes) -> bytes | None:
        return self._parts.get(partition, {}).get(okey)

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
        self._parts.setdefault(partition, {})[okey] = value
        self.index_update(partition, index_add, index_remove)

    def index_update(self, partition: int, add: Iterable[bytes], remove: Iterable[bytes]) -> None:
        entries = self._index.setdefault(partition, set())
        entries.difference_update(remove)
        entries.update(add)
        if not entries:
            del self._index[partition]

    def delete(self, partition: int, okey: bytes, *, sync: bool = False) -> None:
        part = self._parts.get(partition)
        if part is not None:
            part.pop(okey, None)
            if not part:
                del self._parts[partition]

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
        self.index_update(partition, index_add, index_remove)

    def delete_many(
        self, partition: int, okeys: list[bytes], *, index_remove: Iterable[bytes] = ()
    ) -> None:
        for okey in okeys:
            self.delete(partition, okey)
        self.index_update(partition, (), index_remove)

    def scan(
        self, partition: int, low: bytes, high: bytes, *, index: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        if index:
            keys = sorted(self._index.get(partition, ()))
            return iter([(k, b"") for k in keys[bisect_left(keys, low) : bisect_left(keys, high)]])
        part = self._parts.get(partition, {})
        keys = sorted(part)
        chosen = keys[bisect_left(keys, low) : bisect_left(keys, high)]
        return iter([(k, part[k]) for k in chosen])

    def fold(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        part = self._parts.get(partition, {})
        # Snapshot so callers may write while folding, as a LevelDB iterator allows.
        yield from sorted(part.items())

    async def flush(self) -> None:
        """Nothing to make durable in memory."""

    def count(self, partition: int) -> int:
        return len(self._parts.get(partition, {}))

    def partitions(self) -> list[int]:
        return sorted(self._parts)

    def drop_partition(self, partition: int) -> None:
        self._parts.pop(partition, None)
        self._index.pop(partition, None)

    def queue_append(self, queue: str, seq: int, entry: bytes) -> None:
        self.queues.setdefault(queue, {})[seq] = entry

    def queue_read(self, queue: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        held = self.queues.get(queue, {})
        return [(seq, held[seq]) for seq in heapq.nsmallest(limit, (s for s in held if s >= start))]

    def queue_trim(self, queue: str, first: int, upto: int) -> None:
        held = self.queues.get(queue, {})
        for seq in range(first, upto + 1):
            held.pop(seq, None)
        self.queue_marks[queue] = upto

    def queue_bounds(self, queue: str) -> tuple[int, int]:
        end = self.queue_marks.get(queue, 0) + 1
        held = self.queues.get(queue)
        if not held:
            return end, end
        return min(held), max(end, max(held) + 1)

    def get_meta(self, name: str) -> bytes | None:
        return self._meta.get(name)

    def put_meta(self, name: str, value: bytes, *, sync: bool = True) -> None:
        self._meta[name] = value

    def close(self) -> None:
        pass
