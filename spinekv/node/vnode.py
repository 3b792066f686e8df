"""Vnodes: the contract every user of a node's replicas goes through, and its one implementation.

The contract is riak_core_vnode's, stated once as `VnodeContract`: read (get),
write (coordinate a client write as a new event, or merge a replica), fold
over a partition, is_empty, the items to hand off, receiving handed-off data,
forgetting what the new owner now holds, reaping a tombstone, and dropping a partition. Handoff,
coverage, membership and admin use only this contract, never the backend.

All partitions share one backend; a vnode is the key range of its partition.
Each call is a read-modify-write done synchronously on the event loop, so no two
writes to one key interleave on a node. Writes never wait for the disk; a
caller that needs them durable awaits `flush()`, which shares one fsync among
everyone waiting (group commit).

The write path: every change to a stored object, whatever caused it (client
write, replica merge, read repair, handoff receipt, forget, reap, drop), goes
through `_apply` with the old and the new object in hand, and is told to each
`listeners` entry as a `Change`. Anti-entropy trees and replication queues
hang there. With no listeners, handed-off objects new here are stored without
decoding them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .. import counter, index, tictac
from .. import object as riak_object
from ..dvv import DVVSet
from ..object import Content
from ..storage.base import Backend
from ..storage.keys import split_object_key
from .messages import Get, Put, Reap

log = logging.getLogger("spinekv.vnode")

# (type, bucket) -> allow_mult: handed-off objects arrive without their bucket props.
AllowMultOf = Callable[[bytes, bytes], bool]


@dataclass(frozen=True, slots=True)
class Change:
    """One change to a stored object: `new` None means the local copy was removed."""

    partition: int
    okey: bytes
    old: DVVSet | None
    new: DVVSet | None
    cause: str  # coordinate | merge | handoff | forget | reap | drop


Listener = Callable[[Change], None]


class VnodeContract(Protocol):
    """What a node's replicas offer; one instance serves every partition the node holds."""

    def get(self, partition: int, okey: bytes) -> DVVSet | None:
        """The stored object, or None."""
        ...

    def get_raw(self, partition: int, okey: bytes) -> bytes | None:
        """The stored object encoded, as it goes on the wire."""
        ...

    def coordinate(
        self,
        partition: int,
        okey: bytes,
        context: Mapping[str, int],
        content: Content,
        *,
        allow_mult: bool,
        last_write_wins: bool,
    ) -> DVVSet:
        """Apply a client write as a new event of this vnode; returns the stored object."""
        ...

    def merge(self, partition: int, okey: bytes, incoming: DVVSet, *, allow_mult: bool) -> None:
        """Merge a replica (a coordinator's write, or read repair) into the local copy."""
        ...

    def fold(
        self, partition: int, low: bytes = b"", high: bytes | None = None, *, index: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) under `partition` in key order: all objects, or [low, high) of the
        object keys or (with `index`) of the 2i entry keys."""
        ...

    def is_empty(self, partition: int) -> bool: ...

    def size(self, partition: int) -> int:
        """Objects held under `partition` (a key scan; for progress displays)."""
        ...

    def held(self) -> list[int]:
        """Partitions with at least one object here."""
        ...

    def handoff_items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """(okey, encoded) of everything `partition` holds, to send to its owner."""
        ...

    def receive_handoff(self, partition: int, items: list, allow_mult_of: AllowMultOf) -> None:
        """Merge handed-off (okey, encoded) pairs."""
        ...

    def forget(self, partition: int, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Delete local copies the owner now holds, unless changed since they were sent."""
        ...

    def reap(self, partition: int, okey: bytes, version: bytes) -> bool:
        """Delete the local tombstone if its tictac.version is still `version`; whether it did."""
        ...

    def drop(self, partition: int) -> None:
        """Delete every object and index entry of `partition`."""
        ...

    async def flush(self) -> None:
        """Return once every write made so far is on disk."""
        ...


class Vnodes:
    """The vnode contract over one backend; see the module docstring."""

    def __init__(self, node: str, backend: Backend, rng: random.Random) -> None:
        self.node = node
        self._backend = backend
        self._rng = rng
        self._actors: dict[int, str] = {}
        self.listeners: list[Listener] = []
        self.reaped = 0  # tombstones removed from here by the reaper since start, for /stats
        self.unreadable = 0  # local copies found undecodable (and so treated as missing)

    def actor(self, partition: int) -> str:
        """This node's current actor id for `partition`: the name its new events carry.

        A dot (actor, n) must never name two different writes. An actor's next counter
        for a key comes from the local copy (and the client's context), so the id is
        only safe while the local copy holds every event the actor made on that key.
        That stops holding when a crash loses writes not yet on disk, and when handoff
        deletes the local copies; Riak hit this as kv679 and answered with epochs.
        So ids are not persisted (each start makes fresh ones) and forget() retires
        one. The cost is a few more actors in the clocks of keys written meanwhile.
        """
        actor = self._actors.get(partition)
        if actor is None:
            actor = self._actors[partition] = f"{self._rng.getrandbits(64):016x}"
        return actor

    # ------------------------------------------------------------------ reads

    def get_raw(self, partition: int, okey: bytes) -> bytes | None:
        return self._backend.get(partition, okey)

    def get(self, partition: int, okey: bytes) -> DVVSet | None:
        raw = self._backend.get(partition, okey)
        if raw is None:
            return None
        try:
            return riak_object.decode(raw)
        except riak_object.CodecError as exc:
            self._unreadable(partition, okey, exc)
            return None

    def _unreadable(self, partition: int, okey: bytes, exc: Exception) -> None:
        """A local copy that no longer decodes (a rotten disk) counts as lost: the next write,
        read repair or anti-entropy repair overwrites it with the other replicas' merge."""
        log.warning(
            "partition %d: unreadable local copy of %r (%s); treated as missing",
            partition,
            okey,
            exc,
        )
        self.unreadable += 1
        # The lost copy may hold events of this vnode's actor that the next write would
        # number again (kv679), so new events get a fresh actor, as after forget().
        self._actors.pop(partition, None)

    def fold(
        self, partition: int, low: bytes = b"", high: bytes | None = None, *, index: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        if high is None:
            if low or index:
                raise ValueError("a fold over a key range needs both ends")
            return self._backend.fold(partition)
        return self._backend.scan(partition, low, high, index=index)

    def is_empty(self, partition: int) -> bool:
        return next(iter(self._backend.fold(partition)), None) is None

    def size(self, partition: int) -> int:
        return self._backend.count(partition)

    def held(self) -> list[int]:
        return self._backend.partitions()

    def handoff_items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        return self._backend.fold(partition)

    # ------------------------------------------------------------------ writes

    def coordinate(
        self,
        partition: int,
        okey: bytes,
        context: Mapping[str, int],
        content: Content,
        *,
        allow_mult: bool,
        last_write_wins: bool,
    ) -> DVVSet:
        local = self.get(partition, okey)
        if content.content_type == counter.INCREMENT:
            # A counter increment becomes a state here, over everything this vnode holds.
            content, context = counter.apply(local, content, self.actor(partition))
        obj = riak_object.write(
            local,
            context,
            content,
            self.actor(partition),
            allow_mult=allow_mult,
            last_write_wins=last_write_wins,
        )
        self._apply(partition, okey, local, obj, "coordinate")
        return obj

    def merge(self, partition: int, okey: bytes, incoming: DVVSet, *, allow_mult: bool) -> None:
        local = self.get(partition, okey)
        merged = riak_object.merge(local, incoming, allow_mult=allow_mult)
        if merged != local:
            self._apply(partition, okey, local, merged, "merge")

    def receive_handoff(self, partition: int, items: list, allow_mult_of: AllowMultOf) -> None:
        fresh = []
        entries: set[bytes] = set()
        for okey, encoded in items:
            local = self._backend.get(partition, okey)
            if local is None:
                fresh.append((okey, encoded))  # nothing to merge with: store as sent
                entries |= _encoded_entries(okey, encoded)
            elif local != encoded:
                allow_mult = allow_mult_of(*split_object_key(okey)[:2])
                self.merge(partition, okey, riak_object.decode(encoded), allow_mult=allow_mult)
        self._backend.put_many(partition, fresh, index_add=entries)
        if self.listeners:
            for okey, encoded in fresh:
                self._tell(Change(partition, okey, None, riak_object.decode(encoded), "handoff"))

    def forget(self, partition: int, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Returns how many were deleted; forgetting any retires this partition's actor."""
        backend = self._backend
        gone = [(okey, raw) for okey, raw in items if backend.get(partition, okey) == raw]
        if not gone:
            return 0
        remove = set().union(*(_encoded_entries(okey, raw) for okey, raw in gone))
        backend.delete_many(partition, [okey for okey, _ in gone], index_remove=remove)
        self._actors.pop(partition, None)
        if self.listeners:
            for okey, raw in gone:
                self._tell(Change(partition, okey, riak_object.decode(raw), None, "forget"))
        return len(gone)

    def reap(self, partition: int, okey: bytes, version: bytes) -> bool:
        raw = self._backend.get(partition, okey)
        # Cheap refusal of a live object before decoding; then the clock must be the one the
        # reaper saw on every primary, so a write that landed since is never removed.
        if raw is None or not riak_object.is_encoded_tombstone(raw):
            return False
        old = riak_object.decode(raw)
        if tictac.version(old) != version:
            return False
        self._backend.delete_many(partition, [okey], index_remove=_encoded_entries(okey, raw))
        self.reaped += 1
        if self.listeners:
            self._tell(Change(partition, okey, old, None, "reap"))
        return True

    def drop(self, partition: int) -> None:
        if self.listeners:
            for okey, raw in self._backend.fold(partition):
                self._tell(Change(partition, okey, riak_object.decode(raw), None, "drop"))
        self._backend.drop_partition(partition)
        self._actors.pop(partition, None)

    def _apply(
        self, partition: int, okey: bytes, old: DVVSet | None, new: DVVSet, cause: str
    ) -> None:
        """The write path: `new` over `old`, with the 2i entries changed in the same batch."""
        btype, bucket, key = split_object_key(okey)
        before = index.entries(btype, bucket, key, old)
        after = index.entries(btype, bucket, key, new)
        self._backend.put(
            partition,
            okey,
            riak_object.encode(new),
            index_add=after - before,
            index_remove=before - after,
        )
        if self.listeners:
            self._tell(Change(partition, okey, old, new, cause))

    def _tell(self, change: Change) -> None:
        for listener in self.listeners:
            listener(change)

    async def flush(self) -> None:
        await self._backend.flush()

    # ------------------------------------------------------------------ internode

    def serve_get(self, _source: str, message: Get) -> bytes | None:
        return self._backend.get(message.partition, message.okey)

    def serve_put(self, _source: str, message: Put) -> Any:
        """Merge a replica; answers False at once, or (sync) an awaitable of True once durable."""
        self.merge(
            message.partition,
            message.okey,
            riak_object.decode(message.encoded),
            allow_mult=message.allow_mult,
        )
        return self.durable() if message.sync else False

    def serve_reap(self, _source: str, message: Reap) -> bool:
        return self.reap(message.partition, message.okey, bytes(message.version))

    async def durable(self) -> bool:
        await self._backend.flush()
        return True


def _encoded_entries(okey: bytes, encoded: bytes) -> set[bytes]:
    """The 2i entries of a stored object, decoding it only if it may have any."""
    # Every index name ends in _bin or _int; bytes without either cannot hold one.
    if b"_bin" not in encoded and b"_int" not in encoded:
        return set()
    btype, bucket, key = split_object_key(okey)
    return index.entries(btype, bucket, key, riak_object.decode(encoded))
