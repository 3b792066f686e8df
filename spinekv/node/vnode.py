"""Vnodes: the replicas of each partition this node holds, applied to the local backend.

All partitions share one backend; a vnode is the key range of its partition.
Each call is a read-modify-write done synchronously on the event loop, so no two
writes to one key interleave on a node. Writes never wait for the disk; a
caller that needs them durable awaits `flush()`, which shares one fsync among
everyone waiting (group commit).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from .. import counter, index
from .. import object as riak_object
from ..dvv import DVVSet
from ..object import Content
from ..storage.base import Backend, split_object_key


class Vnodes:
    def __init__(self, node: str, backend: Backend, rng: random.Random) -> None:
        self.node = node
        self.backend = backend
        self._rng = rng
        self._actors: dict[int, str] = {}

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

    def forget(self, partition: int, items: list[tuple[bytes, bytes]]) -> None:
        """Delete local copies (their owner has them now) and retire this partition's actor.

        `items` are (okey, encoded) pairs as stored here; their index entries go too.
        """
        if items:
            remove = set().union(*(_encoded_entries(okey, raw) for okey, raw in items))
            self.backend.delete_many(partition, [okey for okey, _ in items], index_remove=remove)
            self._actors.pop(partition, None)

    def get_raw(self, partition: int, okey: bytes) -> bytes | None:
        return self.backend.get(partition, okey)

    def get(self, partition: int, okey: bytes) -> DVVSet | None:
        raw = self.backend.get(partition, okey)
        return None if raw is None else riak_object.decode(raw)

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
        self._store(partition, okey, local, obj)
        return obj

    def merge(self, partition: int, okey: bytes, incoming: DVVSet, *, allow_mult: bool) -> None:
        """Merge a replica sent by a coordinator (or read repair) into the local copy."""
        local = self.get(partition, okey)
        merged = riak_object.merge(local, incoming, allow_mult=allow_mult)
        if merged != local:
            self._store(partition, okey, local, merged)

    def _store(self, partition: int, okey: bytes, old: DVVSet | None, new: DVVSet) -> None:
        """Write `new` over `old` with the 2i entries changed in the same batch."""
        btype, bucket, key = split_object_key(okey)
        before = index.entries(btype, bucket, key, old)
        after = index.entries(btype, bucket, key, new)
        self.backend.put(
            partition,
            okey,
            riak_object.encode(new),
            index_add=after - before,
            index_remove=before - after,
        )

    def merge_batch(
        self, partition: int, items: list, allow_mult_of: Callable[[bytes, bytes], bool]
    ) -> None:
        """Merge handed-off (okey, encoded) pairs; keys new here are stored as sent."""
        fresh = []
        entries: set[bytes] = set()
        for okey, encoded in items:
            local = self.backend.get(partition, okey)
            if local is None:
                fresh.append((okey, encoded))  # nothing to merge with: skip decode and encode
                entries |= _encoded_entries(okey, encoded)
            elif local != encoded:
                allow_mult = allow_mult_of(*split_object_key(okey)[:2])
                self.merge(partition, okey, riak_object.decode(encoded), allow_mult=allow_mult)
        self.backend.put_many(partition, fresh, index_add=entries)

    async def flush(self) -> None:
        """Return once every write made so far is on disk."""
        await self.backend.flush()


def _encoded_entries(okey: bytes, encoded: bytes) -> set[bytes]:
    """The 2i entries of a stored object, decoding it only if it may have any."""
    # Every index name ends in _bin or _int; bytes without either cannot hold one.
    if b"_bin" not in encoded and b"_int" not in encoded:
        return set()
    btype, bucket, key = split_object_key(okey)
    return index.entries(btype, bucket, key, riak_object.decode(encoded))
