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

    def forget(self, partition: int, okeys: list[bytes]) -> None:
        """Delete local copies (their owner has them now) and retire this partition's actor."""
        if okeys:
            self.backend.delete_many(partition, okeys)
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
        obj = riak_object.write(
            self.get(partition, okey),
            context,
            content,
            self.actor(partition),
            allow_mult=allow_mult,
            last_write_wins=last_write_wins,
        )
        self.backend.put(partition, okey, riak_object.encode(obj))
        return obj

    def merge(self, partition: int, okey: bytes, incoming: DVVSet, *, allow_mult: bool) -> None:
        """Merge a replica sent by a coordinator (or read repair) into the local copy."""
        local = self.get(partition, okey)
        merged = riak_object.merge(local, incoming, allow_mult=allow_mult)
        if merged != local:
            self.backend.put(partition, okey, riak_object.encode(merged))

    def merge_batch(
        self, partition: int, items: list, allow_mult_of: Callable[[bytes, bytes], bool]
    ) -> None:
        """Merge handed-off (okey, encoded) pairs; keys new here are stored as sent."""
        fresh = []
        for okey, encoded in items:
            local = self.backend.get(partition, okey)
            if local is None:
                fresh.append((okey, encoded))  # nothing to merge with: skip decode and encode
            elif local != encoded:
                allow_mult = allow_mult_of(*split_object_key(okey)[:2])
                self.merge(partition, okey, riak_object.decode(encoded), allow_mult=allow_mult)
        self.backend.put_many(partition, fresh)

    async def flush(self) -> None:
        """Return once every write made so far is on disk."""
        await self.backend.flush()
