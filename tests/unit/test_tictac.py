"""Tictac trees: hashing, deltas, shapes, persistence and the exchange's comparisons."""

from __future__ import annotations

import pytest

from spinekv import dvv, tictac
from spinekv.object import Content, write
from spinekv.tictac import Tree, TreeShape

SMALL = TreeShape(segment_bits=8, branch_bits=3)


def obj(*writes: tuple[str, bytes]):
    clock = dvv.EMPTY
    for actor, value in writes:
        clock = write(clock, dvv.join(clock), Content(value), actor, allow_mult=True)
    return clock


def test_a_key_lands_in_the_same_segment_whatever_the_partitioning():
    khash = tictac.key_hash(b"t", b"b", b"k")
    assert khash == tictac.key_hash(b"t", b"b", b"k")
    assert khash != tictac.key_hash(b"t", b"bk", b"")  # fields do not run into each other
    assert 0 <= SMALL.segment_of(khash) < SMALL.segments
    assert SMALL.branch_of(SMALL.segment_of(khash)) < SMALL.branches


def test_the_version_digest_follows_the_clock_not_the_bytes():
    one = obj(("a", b"x"))
    assert tictac.version(one) == tictac.version(obj(("a", b"x")))
    two = write(one, dvv.join(one), Content(b"y"), "b", allow_mult=True)
    assert tictac.version(two) != tictac.version(one)
    sibling = write(one, {}, Content(b"z"), "b", allow_mult=True)  # concurrent: two live dots
    assert tictac.version(sibling) not in (tictac.version(one), tictac.version(two))


def test_a_change_moves_one_segment_its_branch_and_the_root():
    tree = Tree(SMALL)
    khash = tictac.key_hash(b"t", b"b", b"k")
    segment = SMALL.segment_of(khash)
    tree.add(khash, b"v1")
    assert tree.root == tree.segments[segment] == tree.branches[SMALL.branch_of(segment)] != 0
    assert sum(1 for s in tree.segments if s) == 1
    tree.change(khash, b"v1", b"v2")
    assert tree.segments[segment] == tictac.leaf(khash, b"v2")
    tree.change(khash, b"v2", None)
    assert tree.root == 0 and not any(tree.segments) and not any(tree.branches)


def test_a_change_to_the_same_version_changes_nothing():
    tree = Tree(SMALL)
    khash = tictac.key_hash(b"t", b"b", b"k")
    tree.add(khash, b"v")
    before = tree.to_bytes()
    tree.change(khash, b"v", b"v")
    assert tree.to_bytes() == before


def test_trees_survive_a_round_trip_through_bytes():
    tree = Tree(SMALL)
    for i in range(50):
        tree.add(tictac.key_hash(b"t", b"b", str(i).encode()), b"v%d" % i)
    again = Tree.from_bytes(tree.to_bytes(), SMALL)
    assert again == tree and again.root == tree.root and again.branches == tree.branches
    with pytest.raises(ValueError):
        Tree.from_bytes(b"\x00" * 3, SMALL)


def test_the_default_tree_fits_the_stated_memory():
    shape = TreeShape()
    assert shape.segments == 65536 and shape.branches == 256
    assert shape.memory_bytes == 4 * (65536 + 256)
    assert 40 * shape.memory_bytes < 64 * 1024 * 1024  # ~40 primary trees per node


def test_shapes_are_checked():
    with pytest.raises(ValueError):
        TreeShape(segment_bits=4, branch_bits=5)
    with pytest.raises(ValueError):
        Tree(SMALL).combine(Tree(TreeShape(segment_bits=9, branch_bits=3)))


def test_an_exchange_narrows_root_to_branches_to_segments_to_keys():
    ours, theirs = Tree(SMALL), Tree(SMALL)
    keys = {str(i).encode(): tictac.key_hash(b"t", b"b", str(i).encode()) for i in range(200)}
    for h in keys.values():
        ours.add(h, b"v1")
        theirs.add(h, b"v1")
    assert ours.root == theirs.root
    stale, missing = b"17", b"42"
    theirs.change(keys[stale], b"v1", b"v2")
    theirs.change(keys[missing], b"v1", None)
    assert ours.root != theirs.root

    branches = range(SMALL.branches)
    bad_branches = tictac.differing(ours.branches, theirs.branches, branches)
    expected = {SMALL.branch_of(SMALL.segment_of(keys[k])) for k in (stale, missing)}
    assert set(bad_branches) == expected
    asked = [s for b in bad_branches for s in SMALL.segments_of(b)]
    bad_segments = tictac.differing(ours.segment_hashes(asked), theirs.segment_hashes(asked), asked)
    assert set(bad_segments) == {SMALL.segment_of(keys[k]) for k in (stale, missing)}

    def listing(versions: dict[bytes, bytes]) -> dict[bytes, bytes]:
        return {k: v for k, v in versions.items() if SMALL.segment_of(keys[k]) in bad_segments}

    mine = {k: b"v1" for k in keys}
    yours = {**mine, stale: b"v2"}
    del yours[missing]
    assert tictac.differing_keys(listing(mine), listing(yours)) == sorted([stale, missing])


def test_differing_refuses_lists_of_other_lengths():
    with pytest.raises(ValueError):
        tictac.differing([1, 2], [1], [0, 1])
