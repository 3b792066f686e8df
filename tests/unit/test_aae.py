"""AAE trees on a node: kept by every vnode change, rebuilt from folds, persisted at clean stop."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from spinekv.buckets import BucketMeta, Resolver
from spinekv.config import parse_config
from spinekv.node import aae
from spinekv.node.aae import BUILT, LOADED, REBUILDING, AaeTrees, wanted_trees
from spinekv.node.vnode import Vnodes
from spinekv.object import Content
from spinekv.ring import Ring, primaries
from spinekv.storage.keys import object_key
from spinekv.storage.memory import MemoryBackend
from spinekv.tictac import TreeShape

NODES = [
    {"name": f"n{i}", "http_port": 1000 + 2 * i, "peer_port": 1001 + 2 * i} for i in (1, 2, 3, 4)
]
CONFIG = parse_config(
    {
        "cluster": {"ring_size": 8, "n_val": 3},
        "bucket_types": {"pairs": {"n_val": 2}},
        "node": NODES,
    },
    Path("/tmp/cluster.toml"),
)
RING = Ring(8, ("n1", "n2", "n3", "n4") * 2)
SHAPE = TreeShape(segment_bits=10, branch_bits=4)
BUCKETS = [(b"default", b"b"), (b"pairs", b"p")]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def trees(vnodes: Vnodes, backend: MemoryBackend, ring: Ring = RING, clock=None) -> AaeTrees:
    meta = BucketMeta()
    made = AaeTrees(
        CONFIG,
        "n1",
        vnodes,
        backend,
        lambda: ring,
        lambda: meta,
        Resolver(CONFIG, lambda: meta),
        clock=clock or Clock(),
        rng=random.Random(5),
        shape=SHAPE,
    )
    vnodes.listeners.append(made.on_change)
    return made


async def rebuilt(backend: MemoryBackend) -> dict:
    """(partition, n_val) -> (root, keys, segments) of trees built from scratch over `backend`."""
    fresh = trees(Vnodes("n1", backend, random.Random(9)), backend)
    for source in sorted({slot.source for slot in fresh.slots.values()}):
        await fresh.rebuild(source)
    return snapshot(fresh)


def snapshot(made: AaeTrees) -> dict:
    return {tid: (s.tree.root, s.keys, bytes(s.tree.segments)) for tid, s in made.slots.items()}


def placements(ring: Ring, btype: bytes, bucket: bytes, key: bytes) -> list[int]:
    """The vnode partitions of n1 that hold (type, bucket, key) as a primary."""
    n_val = 2 if btype == b"pairs" else 3
    p = ring.partition_of(btype, bucket, key)
    return [e.partition for e in primaries(ring, p, n_val) if e.node == "n1"]


def put(vnodes: Vnodes, partition: int, okey: bytes, value: bytes) -> None:
    vnodes.coordinate(partition, okey, {}, Content(value), allow_mult=True, last_write_wins=False)


def test_n1_keeps_a_tree_per_preference_list_it_is_a_primary_of():
    # n1 owns 0 and 4: it is a primary of the lists that start up to n_val-1 before them.
    wanted = wanted_trees(RING, "n1", {3, 2})
    assert wanted == {
        **{(p, 3): 0 for p in (6, 7, 0)},
        **{(p, 3): 4 for p in (2, 3, 4)},
        **{(7, 2): 0, (0, 2): 0, (3, 2): 4, (4, 2): 4},
    }
    # A ring that breaks n_val gives n1 two slots of a list: its keys live in the first.
    crowded = Ring(8, ("n1", "n2", "n3") * 2 + ("n1", "n2"))
    assert wanted_trees(crowded, "n1", {3})[(6, 3)] == 6


async def test_incremental_trees_equal_a_rebuild_after_every_kind_of_change():
    backend = MemoryBackend()
    vnodes = Vnodes("n1", backend, random.Random(1))
    made = trees(vnodes, backend)
    other = Vnodes("n2", MemoryBackend(), random.Random(2))
    rng = random.Random(3)
    okeys = []
    for i in range(300):
        btype, bucket = BUCKETS[i % 2]
        key = f"k{i}".encode()
        okey = object_key(btype, bucket, key)
        okeys.append((okey, placements(RING, btype, bucket, key)))
        for partition in placements(RING, btype, bucket, key):
            put(vnodes, partition, okey, b"v%d" % i)
        # A fallback's write: into a vnode n1 does not own, so no tree of n1's moves.
        p = RING.partition_of(btype, bucket, key)
        for entry in primaries(RING, p, 3):
            if entry.node != "n1":
                put(vnodes, entry.partition, okey, b"fallback")
    for okey, parts in rng.sample(okeys, 100):  # replicas merged in (writes, read repair)
        for partition in parts:
            put(other, partition, okey, b"elsewhere")
            vnodes.merge(partition, okey, other.get(partition, okey), allow_mult=True)
    for okey, parts in rng.sample(okeys, 60):  # handoff batches: new keys and merges
        for partition in parts:
            put(other, partition, okey + b"-h", b"handed")
            items = [(okey + b"-h", other.get_raw(partition, okey + b"-h"))]
            if other.get_raw(partition, okey) is not None:
                items.append((okey, other.get_raw(partition, okey)))
            vnodes.receive_handoff(partition, items, lambda t, b: True)
    for okey, parts in rng.sample(okeys, 40):  # forgotten after handing them to the owner
        for partition in parts:
            vnodes.forget(partition, [(okey, vnodes.get_raw(partition, okey))])
    vnodes.drop(RING.partitions_of("n1")[-1])
    assert any(s.keys for s in made.slots.values())
    assert snapshot(made) == await rebuilt(backend)


async def test_a_rebuild_racing_with_writes_ends_equal_to_a_fresh_rebuild(monkeypatch):
    monkeypatch.setattr(aae, "_CHUNK", 3)  # yield to the writers every three keys
    backend = MemoryBackend()
    vnodes = Vnodes("n1", backend, random.Random(1))
    made = trees(vnodes, backend)
    source = RING.partitions_of("n1")[0]

    def keys_of(tag: str, count: int) -> list[bytes]:
        found = []
        i = 0
        while len(found) < count:
            okey = object_key(b"default", b"b", f"{tag}{i}".encode())
            if source in placements(RING, b"default", b"b", f"{tag}{i}".encode()):
                found.append(okey)
            i += 1
        return found

    for okey in keys_of("a", 60):
        put(vnodes, source, okey, b"old")
    # Silent corruption: a stored object changed behind the trees' back.
    corrupt = keys_of("a", 1)[0]
    rot = Vnodes("x", MemoryBackend(), random.Random(4))
    put(rot, source, corrupt, b"rot")
    backend.put(source, corrupt, rot.get_raw(source, corrupt))
    assert snapshot(made) != await rebuilt(backend)

    task = asyncio.ensure_future(made.rebuild(source))
    await asyncio.sleep(0)
    assert {made.slots[t].state for t in made.slots if made.slots[t].source == source} == {
        REBUILDING
    }
    racing = keys_of("a", 60)[::-1]  # from the end, so some land before the fold gets there
    for okey in racing[:30]:
        put(vnodes, source, okey, b"new")  # overwrites, before and behind the fold's cursor
        await asyncio.sleep(0)
    for okey in keys_of("z", 10):
        put(vnodes, source, okey, b"fresh")  # keys that did not exist when the fold began
        await asyncio.sleep(0)
    gone = racing[30:40]
    vnodes.forget(source, [(okey, vnodes.get_raw(source, okey)) for okey in gone])
    await task
    assert {made.slots[t].state for t in made.slots if made.slots[t].source == source} == {BUILT}
    mine = {t: v for t, v in snapshot(made).items() if made.slots[t].source == source}
    fresh = await rebuilt(backend)
    assert mine == {t: fresh[t] for t in mine}
    assert sum(v[1] for v in mine.values()) == 60 + 10 - 10


async def test_trees_persisted_at_a_clean_stop_load_and_a_crash_makes_them_rebuild():
    backend = MemoryBackend()
    vnodes = Vnodes("n1", backend, random.Random(1))
    made = trees(vnodes, backend)
    made.start()
    await asyncio.wait_for(made.settled(), 5)
    for i in range(100):
        okey = object_key(b"default", b"b", b"%d" % i)
        for partition in placements(RING, b"default", b"b", b"%d" % i):
            put(vnodes, partition, okey, b"v")
    before = snapshot(made)
    await made.stop()

    # A clean restart: every tree comes back as it was, with no fold.
    vnodes = Vnodes("n1", backend, random.Random(2))
    loaded = trees(vnodes, backend)
    assert {s.state for s in loaded.slots.values()} == {LOADED}
    assert snapshot(loaded) == before
    # A write then a crash (no stop): the next start trusts no persisted tree.
    okey = object_key(b"default", b"b", b"after")
    put(vnodes, placements(RING, b"default", b"b", b"after")[0], okey, b"v")
    after_crash = trees(Vnodes("n1", backend, random.Random(3)), backend)
    assert {s.state for s in after_crash.slots.values()} == {REBUILDING}
    assert all(s.keys == 0 for s in after_crash.slots.values())
    after_crash.start()
    await asyncio.wait_for(after_crash.settled(), 5)
    assert {s.state for s in after_crash.slots.values()} == {BUILT}
    assert snapshot(after_crash) == await rebuilt(backend)
    await after_crash.stop()


async def test_scheduled_rebuilds_come_about_weekly_and_repair_a_corrupted_tree():
    clock = Clock()
    backend = MemoryBackend()
    vnodes = Vnodes("n1", backend, random.Random(1))
    made = trees(vnodes, backend, clock=clock)
    made.start()
    await asyncio.wait_for(made.settled(), 5)
    built = {tid: s.last_rebuild for tid, s in made.slots.items()}
    days = [(s.next_rebuild - clock.now) / 86_400 for s in made.slots.values()]
    assert all(6.3 <= d <= 7.7 for d in days) and len(set(days)) > 1  # jittered
    okey = object_key(b"default", b"b", b"k")
    part = placements(RING, b"default", b"b", b"k")[0]
    put(vnodes, part, okey, b"v")
    tid = next(t for t, s in made.slots.items() if s.keys)
    made.slots[tid].tree.segments[0] ^= 1  # a bit flipped in memory
    clock.now += 8 * 86_400
    made._wake.set()  # the rebuilder sleeps on the loop's time, which this clock does not move
    await asyncio.sleep(0)
    await asyncio.wait_for(made.settled(), 5)
    assert all(s.last_rebuild == clock.now for s in made.slots.values())
    assert built != {tid: s.last_rebuild for tid, s in made.slots.items()}
    assert snapshot(made) == await rebuilt(backend)
    await made.stop()


def test_ownership_changes_drop_and_create_trees():
    backend = MemoryBackend()
    ring = [RING]
    meta = BucketMeta()
    made = AaeTrees(
        CONFIG,
        "n1",
        Vnodes("n1", backend, random.Random(1)),
        backend,
        lambda: ring[0],
        lambda: meta,
        Resolver(CONFIG, lambda: meta),
        clock=Clock(),
        rng=random.Random(1),
        shape=SHAPE,
    )
    assert set(made.slots) == set(wanted_trees(RING, "n1", {2, 3}))
    # n1 hands partition 0 to n4 and takes 1 from n2.
    ring[0] = Ring(8, ("n4", "n1", "n3", "n4", "n1", "n2", "n3", "n4"))
    made.sync_ownership()
    assert set(made.slots) == set(wanted_trees(ring[0], "n1", {2, 3}))
    assert all(s.source != 0 for s in made.slots.values())
    assert any(s.source == 1 and s.state == REBUILDING for s in made.slots.values())


def test_status_lists_every_tree_in_partition_order():
    backend = MemoryBackend()
    made = trees(Vnodes("n1", backend, random.Random(1)), backend)
    rows = made.status()
    assert [(r["partition"], r["n_val"]) for r in rows] == sorted(made.slots)
    assert set(rows[0]) == {"partition", "n_val", "source", "state", "keys", "root", "last_rebuild"}


# Not msgpack; a marker of trees of another shape.
@pytest.mark.parametrize("raw", [b"\xc1", b"\x81\xa5shape\x92\x10\x08"])
def test_an_unreadable_marker_means_rebuild(raw):
    backend = MemoryBackend()
    backend.put_meta(aae.MARKER_META, raw)
    made = trees(Vnodes("n1", backend, random.Random(1)), backend)
    assert {s.state for s in made.slots.values()} == {REBUILDING}
