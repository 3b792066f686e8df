"""Tictac trees' laws: incremental equals rebuilt in any order; XOR deltas undo and combine."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spinekv import tictac
from spinekv.tictac import Tree, TreeShape

SHAPE = TreeShape(segment_bits=6, branch_bits=2)
KEYS = st.binary(min_size=0, max_size=6)
VERSIONS = st.binary(min_size=1, max_size=4)
# A history of writes: (key, new version or None for a removal).
HISTORY = st.lists(st.tuples(KEYS, st.none() | VERSIONS), max_size=60)


def replay(history, order=None) -> tuple[Tree, dict[bytes, bytes]]:
    tree, state = Tree(SHAPE), {}
    for key, new in history if order is None else (history[i] for i in order):
        khash = tictac.key_hash(b"t", b"b", key)
        tree.change(khash, state.get(key), new)
        if new is None:
            state.pop(key, None)
        else:
            state[key] = new
    return tree, state


def rebuilt(state: dict[bytes, bytes]) -> Tree:
    tree = Tree(SHAPE)
    for key, digest in state.items():
        tree.add(tictac.key_hash(b"t", b"b", key), digest)
    return tree


@given(HISTORY)
def test_incremental_updates_equal_a_rebuild_from_scratch(history):
    tree, state = replay(history)
    assert tree == rebuilt(state)
    again = Tree.from_bytes(tree.to_bytes(), SHAPE)
    assert again.root == tree.root and list(again.branches) == list(tree.branches)


@given(st.dictionaries(KEYS, VERSIONS, max_size=40), st.randoms(use_true_random=False))
def test_the_order_keys_are_added_in_does_not_matter(state, rnd):
    items = list(state.items())
    rnd.shuffle(items)
    tree = Tree(SHAPE)
    for key, digest in items:
        tree.add(tictac.key_hash(b"t", b"b", key), digest)
    assert tree == rebuilt(state)


@given(st.dictionaries(KEYS, VERSIONS, max_size=30), KEYS, VERSIONS, VERSIONS)
def test_a_change_and_its_reverse_cancel(state, key, old, new):
    tree = rebuilt(state)
    before = tree.to_bytes()
    khash = tictac.key_hash(b"t", b"b", key)
    tree.change(khash, old, new)
    tree.change(khash, new, old)
    assert tree.to_bytes() == before


@given(st.dictionaries(KEYS, VERSIONS, max_size=30), st.dictionaries(KEYS, VERSIONS, max_size=30))
def test_the_tree_of_disjoint_key_sets_is_the_xor_of_their_trees(a, b):
    b = {k: v for k, v in b.items() if k not in a}
    combined = rebuilt(a)
    combined.combine(rebuilt(b))
    assert combined == rebuilt({**a, **b})
    assert combined.root == rebuilt(a).root ^ rebuilt(b).root


@given(st.dictionaries(KEYS, VERSIONS, max_size=30), st.dictionaries(KEYS, VERSIONS, max_size=30))
def test_every_differing_key_is_in_a_differing_segment(a, b):
    ours, theirs = rebuilt(a), rebuilt(b)
    everywhere = range(SHAPE.segments)
    bad = tictac.differing(
        ours.segment_hashes(everywhere), theirs.segment_hashes(everywhere), everywhere
    )
    # (A segment whose two XORs collide would hide its keys: a 2**-32 chance per segment.)
    for key in tictac.differing_keys(a, b):
        assert SHAPE.segment_of(tictac.key_hash(b"t", b"b", key)) in bad
    assert (not bad) == (a == b)
