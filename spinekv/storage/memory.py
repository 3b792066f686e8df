"""In-memory backend: the same contract as LevelDB, for tests and the simulation."""

from __future__ import annotations

from collections.abc import Iterator


class MemoryBackend:
    def __init__(self) -> None:
        self._parts: dict[int, dict[bytes, bytes]] = {}
        self._meta: dict[str, bytes] = {}

    def get(self, partition: int, okey: bytes) -> bytes | None:
        return self._parts.get(partition, {}).get(okey)

    def put(self, partition: int, okey: bytes, value: bytes, *, sync: bool = False) -> None:
        self._parts.setdefault(partition, {})[okey] = value

    def delete(self, partition: int, okey: bytes, *, sync: bool = False) -> None:
        part = self._parts.get(partition)
        if part is not None:
            part.pop(okey, None)
            if not part:
                del self._parts[partition]

    def put_many(self, partition: int, items: list[tuple[bytes, bytes]]) -> None:
        for okey, value in items:
            self.put(partition, okey, value)

    def delete_many(self, partition: int, okeys: list[bytes]) -> None:
        for okey in okeys:
            self.delete(partition, okey)

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

    def get_meta(self, name: str) -> bytes | None:
        return self._meta.get(name)

    def put_meta(self, name: str, value: bytes) -> None:
        self._meta[name] = value

    def close(self) -> None:
        pass
