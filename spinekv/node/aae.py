"""Active anti-entropy's trees: a Tictac tree per preference list this node holds as a primary.

A tree is named by (partition, n_val): the keys whose preference list starts at
`partition` (the key's hash partition) and whose bucket has that n_val. This node
keeps the tree when it owns one of that list's primaries; the tree's `source` is the
vnode (the owned partition) that stores those keys here, so two primaries of one list
hold trees over the same keys and compare root for root.

Every change a vnode tells its listeners moves one key of one tree by an XOR delta,
with no rescan; changes to a vnode this node holds only as a fallback are ignored.

Trees outlive restarts: a clean stop persists them with a marker, and the first change
after the next start clears the marker, so a crash leaves none and every tree is then
rebuilt. A rebuild folds over its source vnode in the background while the node keeps
serving. The fold reads a snapshot taken when it starts; from that moment every change
goes to the rebuilt tree as well, as a delta over the snapshot, so nothing written
meanwhile is lost or counted twice. Each tree is rebuilt again every `rebuild_days`
(jittered) to catch silent corruption of stored objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import msgpack

from .. import buckets
from .. import object as riak_object
from ..buckets import BucketMeta
from ..clock import Clock
from ..config import ClusterConfig
from ..props import BucketProps
from ..ring import Ring, primaries
from ..storage.base import Backend
from ..storage.keys import split_object_key
from ..tictac import Tree, TreeShape, key_hash, version
from .vnode import Change, VnodeContract

log = logging.getLogger("spinekv.aae")

MARKER_META = "aae"
BUILT, LOADED, REBUILDING = "built", "loaded", "rebuilding"
# Keys folded between two yields to the event loop during a rebuild.
_CHUNK = 500
_DAY = 86_400.0
_RETRY = 60.0  # seconds before a failed rebuild is tried again
# A scheduled rebuild comes this fraction of the period early or late at random, so the
# trees of one node (and of its peers) do not all rebuild at once.
_JITTER = 0.1

TreeId = tuple[int, int]  # (the preference list's first partition, n_val)
PropsOf = Callable[[str, str], BucketProps | None]


def tree_meta(tid: TreeId) -> str:
    """The node metadata name a tree is persisted under."""
    return f"aae/{tid[0]}/{tid[1]}"


def wanted_trees(ring: Ring, me: str, n_vals: set[int]) -> dict[TreeId, int]:
    """Each tree `me` keeps, to its source: the partition `me` owns in that preference list
    (the first, should a ring that breaks its n_val give `me` two)."""
    wanted: dict[TreeId, int] = {}
    for n_val in sorted(n for n in n_vals if n <= ring.ring_size):
        for partition in range(ring.ring_size):
            for entry in primaries(ring, partition, n_val):
                if entry.node == me:
                    wanted[(partition, n_val)] = entry.partition
                    break
    return wanted


def n_vals_in_use(config: ClusterConfig, meta: BucketMeta) -> set[int]:
    """The cluster's n_val and that of every bucket type and bucket with props of its own."""
    found = {config.n_val}
    for name in buckets.type_names(config, meta):
        props = buckets.type_props(config, meta, name)
        if props is not None:
            found.add(props.n_val)
    for kind, type_name, bucket in meta.entries:
        if kind == buckets.BUCKET:
            props = buckets.effective_props(config, meta, type_name, bucket)
            if props is not None:
                found.add(props.n_val)
    return found


def forget_persisted(backend: Backend) -> None:
    """A node running without trees changes data the persisted ones describe: drop their marker."""
    if backend.get_meta(MARKER_META):
        backend.put_meta(MARKER_META, b"")


@dataclass(slots=True)
class Slot:
    """One tree and its bookkeeping; `fresh` is its replacement while a rebuild runs."""

    source: int
    tree: Tree
    keys: int = 0
    loaded: bool = False  # restored from a clean stop, not built since this start
    last_rebuild: float | None = None
    next_rebuild: float = 0.0  # wall-clock seconds; 0: rebuild as soon as possible
    fresh: Tree | None = None
    fresh_keys: int = 0

    @property
    def state(self) -> str:
        if self.fresh is not None or self.last_rebuild is None:
            return REBUILDING
        return LOADED if self.loaded else BUILT

    def change(self, khash: int, old: bytes | None, new: bytes | None) -> None:
        step = (new is not None) - (old is not None)
        self.tree.change(khash, old, new)
        self.keys += step
        if self.fresh is not None:
            self.fresh.change(khash, old, new)
            self.fresh_keys += step


class AaeTrees:
    """This node's trees: kept by vnode changes, rebuilt in the background, persisted at stop."""

    def __init__(
        self,
        config: ClusterConfig,
        me: str,
        vnodes: VnodeContract,
        backend: Backend,
        ring: Callable[[], Ring],
        meta: Callable[[], BucketMeta],
        props_of: PropsOf,
        *,
        clock: Clock,
        rng: random.Random,
        shape: TreeShape | None = None,
    ) -> None:
        self._config = config
        self.me = me
        self._vnodes = vnodes
        self._backend = backend
        self._ring = ring
        self._meta = meta
        self._props_of = props_of
        self._clock = clock
        self._rng = rng
        self.shape = shape or TreeShape()
        self._period = config.aae.rebuild_days * _DAY
        self.slots: dict[TreeId, Slot] = {}
        self.rebuilds = 0  # trees rebuilt since start (trees loaded from a clean stop are not)
        self._n_vals: set[int] = set()
        self._wake = asyncio.Event()  # a tree was created: look for due rebuilds again
        self._settled = asyncio.Event()  # set while no rebuild is due or running
        self._task: asyncio.Task | None = None
        self._persisted = self._load_marker()
        self._marker_set = bool(self._persisted)
        self.sync_ownership()
        # Trees persisted but not held now are stale from here on.
        self._persisted = {}

    # ------------------------------------------------------------------ ownership

    def sync_ownership(self) -> None:
        """Create the trees of preference lists this node now holds, drop the others."""
        self._n_vals |= n_vals_in_use(self._config, self._meta())
        wanted = wanted_trees(self._ring(), self.me, self._n_vals)
        for tid in [tid for tid, slot in self.slots.items() if wanted.get(tid) != slot.source]:
            del self.slots[tid]
        for tid, source in wanted.items():
            if tid not in self.slots:
                self.slots[tid] = self._new_slot(tid, source)
                self._settled.clear()
                self._wake.set()

    def _new_slot(self, tid: TreeId, source: int) -> Slot:
        persisted = self._persisted.pop(tid, None)
        if persisted is not None and persisted[0] == source:
            raw = self._backend.get_meta(tree_meta(tid))
            if raw is not None and len(raw) == 4 * self.shape.segments:
                _, keys, last = persisted
                tree = Tree.from_bytes(raw, self.shape)
                return Slot(source, tree, keys, True, last, self._next_after(last))
        return Slot(source, Tree(self.shape))

    def _next_after(self, when: float) -> float:
        return when + self._period * self._rng.uniform(1 - _JITTER, 1 + _JITTER)

    # ------------------------------------------------------------------ changes

    def _tree_of(self, okey: bytes) -> tuple[TreeId, int]:
        """The tree a stored key belongs in, and the key's hash in it."""
        btype, bucket, key = split_object_key(okey)
        partition = self._ring().partition_of(btype, bucket, key)
        props = self._props_of(btype.decode(errors="replace"), bucket.decode(errors="replace"))
        # A type not known here yet counts under the cluster's n_val until a rebuild.
        n_val = self._config.n_val if props is None else props.n_val
        return (partition, n_val), key_hash(btype, bucket, key)

    def on_change(self, change: Change) -> None:
        """A vnode listener: one key of one tree moves from its old version to its new."""
        if self._marker_set:
            # The data no longer matches the persisted trees: a crash from here on must
            # leave no marker behind. Synced, so no write can outlive the marker.
            self._marker_set = False
            self._backend.put_meta(MARKER_META, b"")
        tid, khash = self._tree_of(change.okey)
        if tid[1] not in self._n_vals:
            self.sync_ownership()
        slot = self.slots.get(tid)
        if slot is None or slot.source != change.partition:
            return
        old = None if change.old is None else version(change.old)
        new = None if change.new is None else version(change.new)
        slot.change(khash, old, new)

    # ------------------------------------------------------------------ rebuilds

    async def rebuild(self, source: int) -> None:
        """Rebuild every tree whose keys live in vnode `source` from one fold over it."""
        slots = {tid: slot for tid, slot in self.slots.items() if slot.source == source}
        if not slots:
            return
        for slot in slots.values():
            slot.fresh, slot.fresh_keys = Tree(self.shape), 0
        # No await between here and the fold's first item: the snapshot it reads is taken
        # then, so every change after it reaches the fresh trees as a delta (on_change).
        folded = 0
        for okey, raw in self._vnodes.fold(source):
            tid, khash = self._tree_of(okey)
            slot = slots.get(tid)
            if slot is not None and slot.fresh is not None:
                try:
                    obj = riak_object.decode(raw)
                except riak_object.CodecError as exc:
                    # Left out of the tree, so an exchange sees it missing and repairs it.
                    log.warning("aae: partition %d key %r unreadable: %s", source, okey, exc)
                else:
                    slot.fresh.add(khash, version(obj))
                    slot.fresh_keys += 1
            folded += 1
            if folded % _CHUNK == 0:
                await asyncio.sleep(0)
        now = self._clock.time()
        for tid, slot in slots.items():
            if self.slots.get(tid) is not slot or slot.fresh is None:
                continue  # dropped (ownership moved) while the fold ran
            slot.tree, slot.keys, slot.fresh = slot.fresh, slot.fresh_keys, None
            slot.loaded, slot.last_rebuild = False, now
            slot.next_rebuild = self._next_after(now)
            self.rebuilds += 1
        log.debug(
            "aae: rebuilt %d tree(s) of partition %d from %d keys", len(slots), source, folded
        )

    def _due(self) -> tuple[int | None, float | None]:
        """The source of the most overdue tree, else None and the seconds until one is due."""
        now = self._clock.time()
        slot = min(self.slots.values(), key=lambda s: s.next_rebuild, default=None)
        if slot is None:
            return None, None
        if slot.next_rebuild <= now:
            return slot.source, None
        return None, slot.next_rebuild - now

    async def _run(self) -> None:
        while True:
            source, wait = self._due()
            if source is None:
                self._settled.set()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            self._settled.clear()
            try:
                await self.rebuild(source)
            except Exception:
                log.exception("aae: rebuild of partition %d failed; retrying later", source)
                for slot in self.slots.values():
                    if slot.source == source:
                        slot.fresh = None
                        slot.next_rebuild = self._clock.time() + _RETRY

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def settled(self) -> None:
        """Return once no rebuild is due or running."""
        await self._settled.wait()

    # ------------------------------------------------------------------ exchanges

    def built(self, tid: TreeId) -> Tree | None:
        """Tree `tid` if this node holds it and it is built (an exchange may compare it)."""
        slot = self.slots.get(tid)
        return None if slot is None or slot.state == REBUILDING else slot.tree

    async def key_versions(
        self, tid: TreeId, segments: set[int], max_bytes: int
    ) -> tuple[list[list[bytes]], bool]:
        """[object key, version] of tree `tid`'s keys in `segments`, in key order, from a fold
        over its source vnode; cut short (False) once the pairs pass `max_bytes`."""
        slot = self.slots.get(tid)
        if slot is None:
            return [], True
        pairs: list[list[bytes]] = []
        size = 0
        for folded, (okey, raw) in enumerate(self._vnodes.fold(slot.source), 1):
            if folded % _CHUNK == 0:
                await asyncio.sleep(0)
            key_tid, khash = self._tree_of(okey)
            if key_tid != tid or self.shape.segment_of(khash) not in segments:
                continue
            try:
                digest = version(riak_object.decode(raw))
            except riak_object.CodecError:
                continue  # left out, as a rebuild leaves it out: the peer's copy repairs it
            pairs.append([okey, digest])
            size += len(okey) + len(digest)
            if size >= max_bytes:
                return pairs, False
        return pairs, True

    # ------------------------------------------------------------------ persistence

    def _load_marker(self) -> dict[TreeId, tuple[int, int, float]]:
        """The trees a clean stop persisted, if the marker is valid: tid -> (source, keys,
        last rebuild)."""
        raw = self._backend.get_meta(MARKER_META)
        if not raw:
            return {}
        try:
            marker = msgpack.unpackb(raw)
            if marker["shape"] != [self.shape.segment_bits, self.shape.branch_bits]:
                return {}
            return {(p, n): (source, keys, last) for p, n, source, keys, last in marker["trees"]}
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("aae: ignoring an unreadable tree marker (%s); rebuilding", exc)
            return {}

    async def stop(self) -> None:
        """Stop rebuilding and persist every built tree with a marker saying they are current."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        trees = []
        for tid, slot in self.slots.items():
            if slot.last_rebuild is None:
                continue  # never built: the next start rebuilds it anyway
            self._backend.put_meta(tree_meta(tid), slot.tree.to_bytes(), sync=False)
            trees.append([*tid, slot.source, slot.keys, slot.last_rebuild])
        marker = {"shape": [self.shape.segment_bits, self.shape.branch_bits], "trees": trees}
        # Synced last: the trees' writes before it reach the disk with it.
        self._backend.put_meta(MARKER_META, msgpack.packb(marker))

    # ------------------------------------------------------------------ the admin view

    def status(self) -> list[dict]:
        """Per tree, in partition order: what GET /admin/aae shows."""
        return [
            {
                "partition": tid[0],
                "n_val": tid[1],
                "source": slot.source,
                "state": slot.state,
                "keys": slot.keys,
                "root": f"{slot.tree.root:08x}",
                "last_rebuild": slot.last_rebuild,
            }
            for tid, slot in sorted(self.slots.items())
        ]
