"""LevelDB backend (plyvel): one database per node, object keys prefixed by partition."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import plyvel

from .base import StorageError
from .groupsync import GroupSync
from .keys import decode_seq, encode_seq, queue_entry_key, queue_mark_key, queue_seq

_OBJ = b"o"
_META = b"m"
_INDEX = b"x"  # after b"o", so the partition scan over objects never meets them
_QUEUE = b"q"  # replication queues, also after b"o"
_SYNC_MARK = _META + b"\x00fsync"
_PART = struct.Struct(">I")


def _prefix(partition: int) -> bytes:
    return _OBJ + _PART.pack(partition)


def _iprefix(partition: int) -> bytes:
    return _INDEX + _PART.pack(partition)


class LevelDBBackend:
    """Objects under b"o" + partition (4 bytes) + object key; metadata under b"m" + name.

    2i entries live under b"x" + partition + index key, written in the same batch as
    their object, so an object and its index entries change together or not at all.
    Replication queues live under b"q" + their keys.py layout.
    """

    def __init__(self, path: str | Path, *, cache_mb: int = 64) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        try:
            # A bloom filter makes a GET of an absent key (every new key's read-before-write,
            # every handed-off key's existence check) skip the SST files without reading them.
            # A 32 MiB memtable, eleveldb's order of size, flushes and compacts a bulk load
            # (a handoff taking in 100 MB) about half as often as LevelDB's 4 MiB default.
            self._db = plyvel.DB(
                str(path),
                create_if_missing=True,
                lru_cache_size=cache_mb * 1024 * 1024,
                bloom_filter_bits=10,
                write_buffer_size=32 * 1024 * 1024,
            )
        except plyvel.Error as exc:
            raise StorageError(f"cannot open LevelDB at {path}: {exc}") from exc
        self._group = GroupSync(self._fsync)
        # Partitions holding data, kept in memory: finding them by seeking the database
        # steps over every deletion marker a handoff left, and handoff asks on every round.
        self._held = set(self._scan_partitions())
        self._emptied: set[int] = set()  # deleted from since last asked: may be empty now

    def _fsync(self) -> None:
        # A synced write fsyncs LevelDB's log, and with it every write appended before it.
        self._db.put(_SYNC_MARK, b"", sync=True)

    async def flush(self) -> None:
        await self._group.flush()

    def get(self, partition: int, okey: bytes) -> bytes | None:
        return self._db.get(_prefix(partition) + okey)

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
        with self._db.write_batch(sync=sync) as batch:
            batch.put(_prefix(partition) + okey, value)
            self._index_ops(batch, partition, index_add, index_remove)
        self._held.add(partition)

    @staticmethod
    def _index_ops(
        batch: Any, partition: int, add: Iterable[bytes], remove: Iterable[bytes]
    ) -> None:
        iprefix = _iprefix(partition)
        for ikey in remove:
            batch.delete(iprefix + ikey)
        for ikey in add:
            batch.put(iprefix + ikey, b"")

    def delete(self, partition: int, okey: bytes, *, sync: bool = False) -> None:
        with self._db.write_batch(sync=sync) as batch:
            batch.delete(_prefix(partition) + okey)
        self._emptied.add(partition)

    def put_many(
        self,
        partition: int,
        items: list[tuple[bytes, bytes]],
        *,
        index_add: Iterable[bytes] = (),
        index_remove: Iterable[bytes] = (),
    ) -> None:
        prefix = _prefix(partition)
        with self._db.write_batch() as batch:
            for okey, value in items:
                batch.put(prefix + okey, value)
            self._index_ops(batch, partition, index_add, index_remove)
        if items:
            self._held.add(partition)

    def delete_many(
        self, partition: int, okeys: list[bytes], *, index_remove: Iterable[bytes] = ()
    ) -> None:
        prefix = _prefix(partition)
        with self._db.write_batch() as batch:
            for okey in okeys:
                batch.delete(prefix + okey)
            self._index_ops(batch, partition, (), index_remove)
        self._emptied.add(partition)

    def scan(
        self, partition: int, low: bytes, high: bytes, *, index: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        prefix = _iprefix(partition) if index else _prefix(partition)
        cut = len(prefix)
        with self._db.iterator(start=prefix + low, stop=prefix + high, fill_cache=False) as it:
            for k, v in it:
                yield k[cut:], v

    def fold(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        prefix = _prefix(partition)
        cut = len(prefix)
        # A bulk scan must not push the foreground's hot blocks out of the block cache.
        with self._db.iterator(prefix=prefix, fill_cache=False) as it:
            for k, v in it:
                yield k[cut:], v

    def count(self, partition: int) -> int:
        with self._db.iterator(
            prefix=_prefix(partition), include_value=False, fill_cache=False
        ) as it:
            return sum(1 for _ in it)

    def partitions(self) -> list[int]:
        for partition in self._emptied & self._held:
            with self._db.iterator(prefix=_prefix(partition), include_value=False) as it:
                if next(it, None) is None:
                    self._held.discard(partition)
        self._emptied.clear()
        return sorted(self._held)

    def _scan_partitions(self) -> list[int]:
        found = []
        seek = _OBJ
        while True:
            with self._db.iterator(start=seek, include_value=False) as it:
                key = next(it, None)
            if key is None or not key.startswith(_OBJ):
                return found
            (partition,) = _PART.unpack_from(key, 1)
            found.append(partition)
            seek = _prefix(partition + 1)

    def drop_partition(self, partition: int) -> None:
        with self._db.write_batch() as batch:
            for prefix in (_prefix(partition), _iprefix(partition)):
                for k in self._db.iterator(prefix=prefix, include_value=False):
                    batch.delete(k)
        self._held.discard(partition)

    def queue_append(self, queue: str, seq: int, entry: bytes) -> None:
        self._db.put(_QUEUE + queue_entry_key(queue, seq), entry)

    def queue_read(self, queue: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        entries: list[tuple[int, bytes]] = []
        prefix = _QUEUE + queue_mark_key(queue)
        start_key = _QUEUE + queue_entry_key(queue, start)
        with self._db.iterator(start=start_key, stop=prefix + b"\xff" * 9) as it:
            for k, v in it:
                if len(entries) >= limit:
                    break
                entries.append((queue_seq(k[1:], queue), v))
        return entries

    def queue_trim(self, queue: str, first: int, upto: int) -> None:
        with self._db.write_batch() as batch:
            for seq in range(first, upto + 1):
                batch.delete(_QUEUE + queue_entry_key(queue, seq))
            batch.put(_QUEUE + queue_mark_key(queue), encode_seq(upto))

    def queue_bounds(self, queue: str) -> tuple[int, int]:
        mark = self._db.get(_QUEUE + queue_mark_key(queue))
        end = 1 if mark is None else decode_seq(mark) + 1
        entries = _QUEUE + queue_entry_key(queue, 0)
        stop = _QUEUE + queue_mark_key(queue) + b"\xff" * 9
        with self._db.iterator(start=entries, stop=stop, include_value=False) as it:
            head = next(it, None)
        if head is None:
            return end, end
        with self._db.iterator(start=entries, stop=stop, include_value=False, reverse=True) as it:
            last = queue_seq(next(it)[1:], queue)
        return queue_seq(head[1:], queue), max(end, last + 1)

    def get_meta(self, name: str) -> bytes | None:
        return self._db.get(_META + name.encode())

    def put_meta(self, name: str, value: bytes, *, sync: bool = True) -> None:
        self._db.put(_META + name.encode(), value, sync=sync)

    def close(self) -> None:
        self._group.close()
        if not self._db.closed:
            self._db.close()
