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
        """This node's actor id for `partition`, created once and persisted.

        A random id rather than the node name: if a node loses its data and comes
        back, a fresh id keeps its new writes from reusing dots others have seen.
        """
        actor = self._actors.get(partition)
        if actor is None:
            name = f"vnode-id/{partition}"
            raw = self.backend.get_meta(name)
            if raw is None:
                raw = f"{self._rng.getrandbits(48):012x}".encode()
                self.backend.put_meta(name, raw)
            actor = self._actors[partition] = raw.decode()
        return actor

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
        self, partition: int, items: list, allow_mult_of: Callable[[bytes], bool]
    ) -> None:
        """Merge handed-off (okey, encoded) pairs; keys new here are stored as sent."""
        fresh = []
        for okey, encoded in items:
            local = self.backend.get(partition, okey)
            if local is None:
                fresh.append((okey, encoded))  # nothing to merge with: skip decode and encode
            elif local != encoded:
                allow_mult = allow_mult_of(split_object_key(okey)[0])
                self.merge(partition, okey, riak_object.decode(encoded), allow_mult=allow_mult)
        self.backend.put_many(partition, fresh)

    async def flush(self) -> None:
        """Return once every write made so far is on disk."""
        await self.backend.flush()
