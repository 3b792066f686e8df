"""Operator folds over one vnode (Riak 3's aae_fold): object stats, keys over a threshold,
keys to erase, tombstones to reap, full-sync's Tictac tree and segment keys; paced so that
foreground requests keep flowing.

Each fold is one kind of coverage request (coverage.py plans which vnode answers for
which key partitions and passes the filter in as `wanted`). The answers are plain lists
and dicts, as they cross the wire; `ObjectStats` adds the per-vnode answers up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from .. import object as riak_object
from ..storage import keys
from ..tictac import Tree, TreeShape, key_hash, version
from .vnode import VnodeContract

OBJECT_STATS = "object-stats"
FIND_KEYS = "find-keys"
ERASABLE = "erasable"
REAPABLE = "reapable"
TICTAC = "tictac"
KEYS_IN_SEGMENTS = "keys-in-segments"
KINDS = frozenset({OBJECT_STATS, FIND_KEYS, ERASABLE, REAPABLE, TICTAC, KEYS_IN_SEGMENTS})
SIBLINGS, SIZE = "siblings", "size"

# A fold works through SLICE keys, then rests long enough that it takes at most a share
# of the event loop: BUSY_SHARE while clients wait for answers on the node, IDLE_SHARE
# while none do. The share is of one node's loop, and a coverage fold runs on every node
# at once: where nodes share cores (the local cluster) its cost in CPU adds up across
# them, so under load it must be small for foreground requests to keep 90% of their
# throughput (measured: bench/aae.py), and on an idle cluster it may take its time.
SLICE = 200
BUSY_SHARE = 0.02
IDLE_SHARE = 0.5

# Full-sync compares two clusters' trees segment for segment, so both build them in one
# shape: this one, whatever their ring sizes.
FULLSYNC_SHAPE = TreeShape()

Wanted = Callable[[bytes, bytes, bytes], bool]


@dataclass
class ObjectStats:
    """Counts over stored objects, tombstones included (they take space until reaped)."""

    count: int = 0
    total_bytes: int = 0
    largest_bytes: int = 0
    tombstones: int = 0
    siblings: dict[int, int] = field(default_factory=dict)  # sibling count -> objects

    def add(self, size: int, deleted_flags: list[bool]) -> None:
        self.count += 1
        self.total_bytes += size
        self.largest_bytes = max(self.largest_bytes, size)
        self.tombstones += all(deleted_flags)
        n = len(deleted_flags)
        self.siblings[n] = self.siblings.get(n, 0) + 1

    def merge(self, other: ObjectStats) -> None:
        self.count += other.count
        self.total_bytes += other.total_bytes
        self.largest_bytes = max(self.largest_bytes, other.largest_bytes)
        self.tombstones += other.tombstones
        for n, objects in other.siblings.items():
            self.siblings[n] = self.siblings.get(n, 0) + objects

    def to_wire(self) -> list:
        histogram = sorted(self.siblings.items())
        return [self.count, self.total_bytes, self.largest_bytes, self.tombstones, histogram]

    @classmethod
    def from_wire(cls, raw: list) -> ObjectStats:
        count, total, largest, tombstones, histogram = raw
        return cls(count, total, largest, tombstones, {int(n): int(c) for n, c in histogram})

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "total_bytes": self.total_bytes,
            "largest_bytes": self.largest_bytes,
            "tombstones": self.tombstones,
            "siblings": {str(n): c for n, c in sorted(self.siblings.items())},
        }


@dataclass(frozen=True)
class Scope:
    """Which objects a fold visits: a bucket type, a bucket of it, keys starting with a prefix."""

    bucket_type: bytes | None = None
    bucket: bytes | None = None
    prefix: bytes = b""

    def to_wire(self) -> list:
        return [self.bucket_type, self.bucket, self.prefix]

    @classmethod
    def from_wire(cls, raw: list) -> Scope:
        btype, bucket, prefix = raw
        return cls(
            None if btype is None else bytes(btype),
            None if bucket is None else bytes(bucket),
            bytes(prefix),
        )

    def bounds(self) -> tuple[bytes, bytes | None]:
        """The object-key range to scan: (b"", None) for the whole vnode."""
        if self.bucket_type is None:
            return b"", None
        low = keys.bucket_prefix(self.bucket_type, self.bucket)
        return low, keys.successor(low)


class Pacer:
    """One per node, shared by every operator fold it runs: rests between slices so that,
    all together, folds take at most a share of the event loop, a small one while client
    requests wait for an answer (`backlog`) and more while none do.

    A coverage fold runs on each of a node's vnodes at once, so a pacer per fold let a
    node's folds take the share once per vnode; here every slice's work, whichever fold
    did it, pushes back the time at which any fold may go on.
    """

    def __init__(
        self,
        backlog: Callable[[], int],
        *,
        busy_share: float = BUSY_SHARE,
        idle_share: float = IDLE_SHARE,
        slice_keys: int = SLICE,
    ) -> None:
        self._backlog = backlog
        self._busy_rest = (1 - busy_share) / busy_share
        self._idle_rest = (1 - idle_share) / idle_share
        self.slice_keys = slice_keys
        self._resume = 0.0  # loop time before which no fold goes on

    def rest(self, busy: float) -> float:
        """The rest that `busy` seconds of fold work earn."""
        # The operator's own request waits on the node it asked: one is not foreground.
        return busy * (self._busy_rest if self._backlog() > 1 else self._idle_rest)

    def fold(self) -> FoldPace:
        """The pacing of one fold."""
        return FoldPace(self)

    async def _after(self, busy: float) -> None:
        loop = asyncio.get_running_loop()
        self._resume = max(self._resume, loop.time()) + self.rest(busy)
        await asyncio.sleep(self._resume - loop.time())


class FoldPace:
    """One fold's slices: after each, the node's pacer decides how long it rests."""

    def __init__(self, pacer: Pacer) -> None:
        self._pacer = pacer
        self._loop = asyncio.get_running_loop()
        self._seen = 0
        self._started = self._loop.time()

    async def step(self) -> None:
        self._seen += 1
        if self._seen % self._pacer.slice_keys:
            return
        # The keys of a slice are worked through without a yield, so this is its own work.
        await self._pacer._after(self._loop.time() - self._started)
        self._started = self._loop.time()


async def _objects(
    vnodes: VnodeContract, vnode: int, wanted: Wanted, scope: Scope, pacer: Pacer
) -> AsyncIterator[tuple[bytes, bytes, bytes, bytes]]:
    """(type, bucket, key, encoded object) of every object in `scope` that `wanted` keeps."""
    pace = pacer.fold()
    low, high = scope.bounds()
    for okey, value in vnodes.fold(vnode, low, high):
        await pace.step()
        btype, bucket, key = keys.split_object_key(okey)
        if key.startswith(scope.prefix) and wanted(btype, bucket, key):
            yield btype, bucket, key, value


async def object_stats(
    vnodes: VnodeContract, vnode: int, wanted: Wanted, scope: Scope, pacer: Pacer
) -> list:
    stats = ObjectStats()
    async for _, _, _, value in _objects(vnodes, vnode, wanted, scope, pacer):
        stats.add(len(value), riak_object.deleted_flags(value))
    return stats.to_wire()


def over(measure: str, threshold: int, size: int, siblings: int) -> bool:
    """Whether an object of `size` bytes and `siblings` siblings is over a find-keys threshold."""
    return (siblings if measure == SIBLINGS else size) > threshold


async def find_keys(
    vnodes: VnodeContract,
    vnode: int,
    wanted: Wanted,
    scope: Scope,
    pacer: Pacer,
    measure: str,
    threshold: int,
) -> list[list]:
    """[type, bucket, key, siblings, size] of every object over the threshold."""
    found = []
    async for btype, bucket, key, value in _objects(vnodes, vnode, wanted, scope, pacer):
        siblings = len(riak_object.deleted_flags(value))
        if over(measure, threshold, len(value), siblings):
            found.append([btype, bucket, key, siblings, len(value)])
    return found


async def erasable(
    vnodes: VnodeContract, vnode: int, wanted: Wanted, scope: Scope, pacer: Pacer
) -> list[list]:
    """[type, bucket, key] of every object in scope that is not already a tombstone."""
    return [
        [btype, bucket, key]
        async for btype, bucket, key, value in _objects(vnodes, vnode, wanted, scope, pacer)
        if not riak_object.is_encoded_tombstone(value)
    ]


async def reapable(
    vnodes: VnodeContract, vnode: int, wanted: Wanted, scope: Scope, pacer: Pacer, before_us: int
) -> list[list]:
    """[type, bucket, key, last modified (us)] of every tombstone in scope last changed
    before `before_us`. Only tombstones are decoded, for their last-modified time."""
    found = []
    async for btype, bucket, key, value in _objects(vnodes, vnode, wanted, scope, pacer):
        if riak_object.is_encoded_tombstone(value):
            contents = riak_object.contents(riak_object.decode(value))
            modified = max(c.last_modified_us for c in contents)
            if modified < before_us:
                found.append([btype, bucket, key, modified])
    return found


async def _versions(
    vnodes: VnodeContract, vnode: int, wanted: Wanted, scope: Scope, pacer: Pacer
) -> AsyncIterator[tuple[bytes, bytes, bytes, int, bytes]]:
    """(type, bucket, key, key hash, version) of every object in scope, tombstones included
    (they replicate). An object that does not decode is left out, as an AAE rebuild leaves
    it out: the other cluster's copy then repairs it."""
    async for btype, bucket, key, value in _objects(vnodes, vnode, wanted, scope, pacer):
        try:
            digest = version(riak_object.decode(value))
        except riak_object.CodecError:
            continue
        yield btype, bucket, key, key_hash(btype, bucket, key), digest


async def tictac(
    vnodes: VnodeContract, vnode: int, wanted: Wanted, scope: Scope, pacer: Pacer
) -> list[bytes]:
    """[the Tictac tree's segments] of the objects in scope, keyed by key hash alone, so the
    trees of every covering vnode XOR into the cluster's."""
    tree = Tree(FULLSYNC_SHAPE)
    async for _, _, _, khash, digest in _versions(vnodes, vnode, wanted, scope, pacer):
        tree.add(khash, digest)
    return [tree.to_bytes()]


async def keys_in_segments(
    vnodes: VnodeContract,
    vnode: int,
    wanted: Wanted,
    scope: Scope,
    pacer: Pacer,
    segments: frozenset[int],
    limit: int,
) -> list:
    """[complete, [[type, bucket, key, version], ...]]: the objects in scope whose key hash
    falls in `segments`, sorted by (type, bucket, key) and cut to the first `limit` (then
    complete is False), so that a cut answer is a prefix in key order."""
    found = [
        [btype, bucket, key, digest]
        async for btype, bucket, key, khash, digest in _versions(
            vnodes, vnode, wanted, scope, pacer
        )
        if FULLSYNC_SHAPE.segment_of(khash) in segments
    ]
    found.sort()
    return [len(found) <= limit, found[:limit]]


async def run(
    vnodes: VnodeContract, vnode: int, wanted: Wanted, kind: str, args: list, pacer: Pacer
) -> list:
    """Answer one operator fold: `args` is the scope's wire form, then the kind's own."""
    scope = Scope.from_wire(args[0])
    if kind == OBJECT_STATS:
        return await object_stats(vnodes, vnode, wanted, scope, pacer)
    if kind == FIND_KEYS:
        measure, threshold = args[1], int(args[2])
        if measure not in (SIBLINGS, SIZE):
            raise ValueError(f"find-keys measures siblings or size, not {measure!r}")
        return await find_keys(vnodes, vnode, wanted, scope, pacer, measure, threshold)
    if kind == ERASABLE:
        return await erasable(vnodes, vnode, wanted, scope, pacer)
    if kind == REAPABLE:
        return await reapable(vnodes, vnode, wanted, scope, pacer, int(args[1]))
    if kind == TICTAC:
        return await tictac(vnodes, vnode, wanted, scope, pacer)
    if kind == KEYS_IN_SEGMENTS:
        segments, limit = frozenset(int(s) for s in args[1]), int(args[2])
        if limit < 1 or not all(0 <= s < FULLSYNC_SHAPE.segments for s in segments):
            raise ValueError("keys-in-segments needs segments of the full-sync shape and a limit")
        return await keys_in_segments(vnodes, vnode, wanted, scope, pacer, segments, limit)
    raise ValueError(f"unknown operator fold {kind!r}")
