"""The exchange core as a pure function: every branch from root compare to confirmed repairs."""

from __future__ import annotations

import pytest

from spinekv.aae_exchange import (
    BRANCHES,
    IN_SYNC,
    KEYS,
    REPAIR,
    ROOT,
    SEGMENTS,
    UNCONFIRMED,
    Ask,
    Done,
    ExchangeCore,
    KeyList,
    compare_lists,
)
from spinekv.tictac import Tree, TreeShape, key_hash

SHAPE = TreeShape(segment_bits=8, branch_bits=4)


def tree_of(versions: dict[bytes, bytes]) -> Tree:
    tree = Tree(SHAPE)
    for key, v in versions.items():
        tree.add(key_hash(b"t", b"b", key), v)
    return tree


def segment(key: bytes) -> int:
    return SHAPE.segment_of(key_hash(b"t", b"b", key))


def answer(step: Ask, theirs: Tree):
    """What the peer answers: a root, or hashes in the positions asked."""
    if step.what == ROOT:
        return theirs.root
    if step.what == BRANCHES:
        return list(theirs.branches)
    return theirs.segment_hashes(step.positions)


def walk_to_keys(ours: Tree, theirs: Tree, **kw) -> tuple[ExchangeCore, Ask]:
    core = ExchangeCore(ours, **kw)
    step = core.start()
    while step.what != KEYS:
        step = core.feed(answer(step, theirs))
        assert isinstance(step, Ask)
    return core, step


def lists(versions: dict[bytes, bytes], segments) -> KeyList:
    return KeyList({k: v for k, v in versions.items() if segment(k) in segments})


BASE = {b"k%d" % i: b"v1" for i in range(40)}


def test_equal_roots_are_in_sync_after_one_message():
    core = ExchangeCore(tree_of(BASE))
    assert core.start() == Ask(ROOT)
    assert core.feed(tree_of(BASE).root) == Done(IN_SYNC)


def test_a_differing_root_asks_every_branch_then_only_the_differing_branches_segments():
    theirs = {**BASE, b"k3": b"v2"}
    core = ExchangeCore(tree_of(BASE))
    core.start()
    step = core.feed(tree_of(theirs).root)
    assert step == Ask(BRANCHES, None)
    step = core.feed(list(tree_of(theirs).branches))
    branch = SHAPE.branch_of(segment(b"k3"))
    assert step == Ask(SEGMENTS, tuple(SHAPE.segments_of(branch)))
    step = core.feed(answer(step, tree_of(theirs)))
    assert step == Ask(KEYS, (segment(b"k3"),))


def test_branches_that_became_equal_meanwhile_end_in_sync():
    ours = tree_of(BASE)
    core = ExchangeCore(ours)
    core.start()
    core.feed(ours.root ^ 1)
    assert core.feed(list(ours.branches)) == Done(IN_SYNC)


def test_segments_that_became_equal_meanwhile_end_in_sync():
    ours, theirs = tree_of(BASE), tree_of({**BASE, b"k3": b"v2"})
    core = ExchangeCore(ours)
    core.start()
    core.feed(theirs.root)
    step = core.feed(list(theirs.branches))
    assert core.feed(ours.segment_hashes(step.positions)) == Done(IN_SYNC)


def test_keys_differing_on_both_looks_are_repaired_sorted_and_missing_ones_count():
    mine = {**BASE}
    del mine[b"k5"]
    theirs = {**BASE, b"k3": b"v2", b"new": b"v1"}
    core, step = walk_to_keys(tree_of(mine), tree_of(theirs))
    segs = set(step.positions)
    again = core.feed(lists(theirs, segs), lists(mine, segs))
    assert again == step  # the second look asks for the same segments
    done = core.feed(lists(theirs, segs), lists(mine, segs))
    assert done == Done(REPAIR, (b"k3", b"k5", b"new"))


def test_a_difference_gone_on_the_second_look_is_not_repaired():
    theirs = {**BASE, b"k3": b"v2", b"k9": b"v2"}
    core, step = walk_to_keys(tree_of(BASE), tree_of(theirs))
    segs = set(step.positions)
    core.feed(lists(theirs, segs), lists(BASE, segs))
    settled = {**BASE, b"k3": b"v2"}  # k3's write reached us; k9's is still different
    done = core.feed(lists(theirs, segs), lists(settled, segs))
    assert done == Done(REPAIR, (b"k9",))


def test_no_difference_in_the_key_lists_is_unconfirmed():
    theirs = {**BASE, b"k3": b"v2"}
    core, step = walk_to_keys(tree_of(BASE), tree_of(theirs))
    segs = set(step.positions)
    assert core.feed(lists(BASE, segs), lists(BASE, segs)) == Done(UNCONFIRMED)


def test_differences_all_gone_on_the_second_look_are_unconfirmed():
    theirs = {**BASE, b"k3": b"v2"}
    core, step = walk_to_keys(tree_of(BASE), tree_of(theirs))
    segs = set(step.positions)
    core.feed(lists(theirs, segs), lists(BASE, segs))
    assert core.feed(lists(theirs, segs), lists(theirs, segs)) == Done(UNCONFIRMED)


def test_repairs_and_key_list_segments_are_capped_at_max_repairs():
    theirs = {k: b"v2" for k in BASE}
    core, step = walk_to_keys(tree_of(BASE), tree_of(theirs), max_repairs=3)
    assert len(step.positions) == 3
    segs = {segment(k) for k in BASE}  # answer with more than was asked: still capped
    core.feed(lists(theirs, segs), lists(BASE, segs))
    done = core.feed(lists(theirs, segs), lists(BASE, segs))
    assert done.outcome == REPAIR and done.repair == tuple(sorted(BASE)[:3])


def test_misuse_is_refused():
    with pytest.raises(ValueError):
        ExchangeCore(tree_of(BASE), max_repairs=0)
    core = ExchangeCore(tree_of(BASE))
    with pytest.raises(RuntimeError):
        core.feed(0)
    core.start()
    core.feed(tree_of(BASE).root)
    with pytest.raises(RuntimeError):  # after Done
        core.feed(0)
    core, _ = walk_to_keys(tree_of(BASE), tree_of({**BASE, b"k1": b"x"}))
    with pytest.raises(TypeError):
        core.feed(KeyList({}))


def test_compare_lists_ignores_keys_past_a_cut_list():
    ours = KeyList({b"a": b"1", b"c": b"1", b"e": b"1"}, complete=False)
    theirs = KeyList({b"a": b"2", b"b": b"1", b"d": b"1", b"e": b"1"})
    # e is past neither cut and equal; theirs is complete, so c is missing there.
    assert compare_lists(ours, theirs) == [b"a", b"b", b"c", b"d"]
    cut_both = KeyList({b"a": b"2", b"b": b"1"}, complete=False)  # nothing known past b
    assert compare_lists(ours, cut_both) == [b"a", b"b"]
    assert compare_lists(KeyList({}, complete=False), theirs) == []
    assert compare_lists(KeyList({}), theirs) == [b"a", b"b", b"d", b"e"]
