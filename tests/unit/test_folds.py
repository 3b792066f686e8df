"""Operator folds on one vnode: stats accumulation, thresholds, scopes and pacing."""

from __future__ import annotations

import asyncio
import random

import pytest

from spinekv import object as riak_object
from spinekv.node import folds
from spinekv.node.folds import ObjectStats, Pacer, Scope
from spinekv.node.vnode import Vnodes
from spinekv.object import Content
from spinekv.storage.keys import object_key
from spinekv.storage.memory import MemoryBackend
from spinekv.tictac import Tree, key_hash, version

P = 0


def everything(btype: bytes, bucket: bytes, key: bytes) -> bool:
    return True


def pacer() -> Pacer:
    return Pacer(lambda: 0)


def store() -> Vnodes:
    """One vnode holding: sets/b/{a1,a2} (a2 with 2 siblings), sets/c/a3 (big), default/b/x
    and a tombstone sets/b/gone."""
    vnodes = Vnodes("n1", MemoryBackend(), random.Random(1))

    def put(btype: bytes, bucket: bytes, key: bytes, content: Content) -> None:
        okey = object_key(btype, bucket, key)
        old = vnodes.get(P, okey)
        context = {} if old is None or key == b"a2" else riak_object.context(old)
        vnodes.coordinate(P, okey, context, content, allow_mult=True, last_write_wins=False)

    put(b"sets", b"b", b"a1", Content(b"1"))
    put(b"sets", b"b", b"a2", Content(b"2"))
    put(b"sets", b"b", b"a2", Content(b"22"))  # no context: a sibling
    put(b"sets", b"c", b"a3", Content(b"x" * 5000))
    put(b"default", b"b", b"x", Content(b"y"))
    put(b"sets", b"b", b"gone", Content(b"z"))
    put(b"sets", b"b", b"gone", riak_object.tombstone(9))
    return vnodes


def test_stats_add_up_counts_sizes_siblings_and_tombstones():
    a, b = ObjectStats(), ObjectStats()
    a.add(10, [False])
    a.add(30, [False, False])
    b.add(5, [True])
    b.add(7, [True, False])
    a.merge(b)
    assert (a.count, a.total_bytes, a.largest_bytes, a.tombstones) == (4, 52, 30, 1)
    assert a.siblings == {1: 2, 2: 2}
    assert ObjectStats.from_wire(a.to_wire()) == a
    assert a.to_json()["siblings"] == {"1": 2, "2": 2}


def test_thresholds_are_strictly_over():
    assert folds.over(folds.SIBLINGS, 1, size=999, siblings=2)
    assert not folds.over(folds.SIBLINGS, 2, size=999, siblings=2)
    assert folds.over(folds.SIZE, 100, size=101, siblings=1)
    assert not folds.over(folds.SIZE, 100, size=100, siblings=9)


def test_scope_wire_roundtrip_and_bounds():
    scope = Scope(b"sets", b"b", b"a")
    assert Scope.from_wire(scope.to_wire()) == scope
    assert Scope().bounds() == (b"", None)
    low, high = Scope(b"sets").bounds()
    assert low < object_key(b"sets", b"zz", b"k") < high
    assert not low <= object_key(b"set", b"b", b"k") < high


async def test_object_stats_over_a_type_a_bucket_and_everything():
    vnodes = store()
    whole = ObjectStats.from_wire(
        await folds.run(vnodes, P, everything, "object-stats", [[None, None, b""]], pacer())
    )
    assert (whole.count, whole.tombstones) == (5, 1)
    assert whole.siblings == {1: 4, 2: 1}
    assert whole.largest_bytes > 5000
    typed = ObjectStats.from_wire(
        await folds.object_stats(vnodes, P, everything, Scope(b"sets"), pacer())
    )
    assert typed.count == 4
    bucket = ObjectStats.from_wire(
        await folds.object_stats(vnodes, P, everything, Scope(b"sets", b"b"), pacer())
    )
    assert (bucket.count, bucket.tombstones) == (3, 1)


async def test_wanted_filters_keys_out():
    vnodes = store()
    only_a1 = await folds.find_keys(
        vnodes, P, lambda t, b, k: k == b"a1", Scope(), pacer(), folds.SIZE, 0
    )
    assert [row[:3] for row in only_a1] == [[b"sets", b"b", b"a1"]]


async def test_find_keys_by_siblings_and_by_size():
    vnodes = store()
    many = await folds.run(
        vnodes, P, everything, "find-keys", [[None, None, b""], "siblings", 1], pacer()
    )
    assert [(r[2], r[3]) for r in many] == [(b"a2", 2)]
    big = await folds.run(
        vnodes, P, everything, "find-keys", [[b"sets", None, b""], "size", 4096], pacer()
    )
    assert [r[2] for r in big] == [b"a3"]


async def test_erasable_keys_skip_tombstones_and_keep_to_the_prefix():
    vnodes = store()
    found = await folds.run(vnodes, P, everything, "erasable", [[b"sets", b"b", b""]], pacer())
    assert sorted(r[2] for r in found) == [b"a1", b"a2"]
    assert await folds.erasable(vnodes, P, everything, Scope(b"sets", b"b", b"a2"), pacer()) == [
        [b"sets", b"b", b"a2"]
    ]


async def test_reapable_finds_the_tombstones_last_changed_before_a_time():
    vnodes = store()
    found = await folds.run(vnodes, P, everything, "reapable", [[b"sets", None, b""], 10], pacer())
    assert found == [[b"sets", b"b", b"gone", 9]]  # tombstone(9): last modified at 9 us
    assert await folds.run(vnodes, P, everything, "reapable", [[None, None, b""], 9], pacer()) == []
    assert await folds.reapable(vnodes, P, everything, Scope(b"default"), pacer(), 10) == []


def expected_tree(vnodes: Vnodes, names: list[tuple[bytes, bytes, bytes]]) -> Tree:
    tree = Tree(folds.FULLSYNC_SHAPE)
    for t, b, k in names:
        obj = vnodes.get(P, object_key(t, b, k))
        assert obj is not None
        tree.add(key_hash(t, b, k), version(obj))
    return tree


async def test_tictac_tree_covers_the_scope_tombstones_included():
    vnodes = store()
    [raw] = await folds.run(vnodes, P, everything, "tictac", [[b"sets", b"b", b""]], pacer())
    tree = Tree.from_bytes(raw, folds.FULLSYNC_SHAPE)
    names = [(b"sets", b"b", k) for k in (b"a1", b"a2", b"gone")]
    assert tree == expected_tree(vnodes, names)
    [whole] = await folds.run(vnodes, P, everything, "tictac", [[b"sets", None, b""]], pacer())
    assert Tree.from_bytes(whole) == expected_tree(vnodes, [*names, (b"sets", b"c", b"a3")])


async def test_tictac_trees_of_disjoint_partitions_xor_into_the_whole():
    vnodes = store()
    scope = Scope(b"sets")
    whole = Tree.from_bytes((await folds.tictac(vnodes, P, everything, scope, pacer()))[0])
    [low] = await folds.tictac(vnodes, P, lambda t, b, k: k < b"a3", scope, pacer())
    [high] = await folds.tictac(vnodes, P, lambda t, b, k: k >= b"a3", scope, pacer())
    combined = Tree.from_bytes(low)
    combined.combine(Tree.from_bytes(high))
    assert combined == whole and whole.root != 0


async def test_keys_in_segments_lists_versions_of_the_asked_segments_only():
    vnodes = store()
    shape = folds.FULLSYNC_SHAPE
    a1 = shape.segment_of(key_hash(b"sets", b"b", b"a1"))
    gone = shape.segment_of(key_hash(b"sets", b"b", b"gone"))
    args = [[b"sets", None, b""], [a1, gone], 10]
    complete, rows = await folds.run(vnodes, P, everything, "keys-in-segments", args, pacer())
    assert complete
    assert rows == sorted(
        [b"sets", b"b", k, version(vnodes.get(P, object_key(b"sets", b"b", k)))]
        for k in (b"a1", b"gone")
    )
    cut = await folds.run(
        vnodes, P, everything, "keys-in-segments", [args[0], [a1, gone], 1], pacer()
    )
    assert cut == [False, rows[:1]]  # the first in key order


async def test_keys_in_segments_refuses_segments_outside_the_tree():
    with pytest.raises(ValueError, match="segments"):
        await folds.run(
            store(), P, everything, "keys-in-segments", [[None, None, b""], [1 << 16], 5], pacer()
        )


def test_the_pacer_rests_nine_times_as_long_as_a_fold_works_while_clients_wait():
    backlog = [5]
    pacer = Pacer(lambda: backlog[0], busy_share=0.1, idle_share=0.5)
    assert pacer.rest(0.01) == pytest.approx(0.09)
    # The backlog's one request is the operator's own fold, waiting on the node it asked.
    backlog[0] = 1
    assert pacer.rest(0.01) == pytest.approx(0.01)


async def test_concurrent_folds_share_one_pacer_s_share_of_the_loop():
    loop = asyncio.get_running_loop()
    pacer = Pacer(lambda: 5, busy_share=0.1, slice_keys=10)
    busy = [0.0]

    async def fold() -> None:
        pace = pacer.fold()
        for _ in range(20):
            t = loop.time()
            while loop.time() - t < 0.001:  # a key's worth of work
                pass
            busy[0] += loop.time() - t
            await pace.step()

    started = loop.time()
    await asyncio.gather(fold(), fold(), fold())
    # A pacer per fold would let the three rest at once, taking about a third of this.
    assert loop.time() - started >= busy[0] / 0.1 * 0.9
