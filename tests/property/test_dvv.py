"""Property tests of dotted version vector sets against an explicit causal-history model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from spinekv import dvv, tictac

ACTORS = ["a", "b", "c"]

# An operation: ("write", replica, context_replica) or ("sync", replica, other_replica).
ops = st.lists(
    st.tuples(st.sampled_from(["write", "sync"]), st.integers(0, 2), st.integers(0, 2)),
    max_size=40,
)


def run_history(operations):
    """Replay operations on three replicas; return the clocks and each replica's model.

    The model keeps, per replica, the set of write events it has seen, and for
    each event the history its writer had read. A value is live exactly when no
    other seen event had read it.
    """
    clocks = [dvv.EMPTY] * 3
    seen: list[set[int]] = [set(), set(), set()]
    past: dict[int, frozenset[int]] = {}
    produced = [dvv.EMPTY]
    next_value = 0
    for op, i, j in operations:
        if op == "write":
            value = next_value
            next_value += 1
            past[value] = frozenset(seen[j])
            clocks[i] = dvv.update(clocks[i], dvv.join(clocks[j]), value, ACTORS[i])
            seen[i] |= seen[j] | {value}
        else:
            clocks[i] = dvv.sync(clocks[i], clocks[j])
            seen[i] |= seen[j]
        produced.append(clocks[i])
    return clocks, seen, past, produced


def live(seen: set[int], past: dict[int, frozenset[int]]) -> set[int]:
    superseded = set().union(*(past[e] for e in seen)) if seen else set()
    return seen - superseded


@settings(max_examples=300)
@given(ops)
def test_values_are_exactly_the_causally_live_writes(operations):
    clocks, seen, past, _ = run_history(operations)
    for clock, history in zip(clocks, seen, strict=True):
        assert sorted(dvv.values(clock)) == sorted(live(history, past))


@given(ops)
def test_concurrent_writes_become_siblings(operations):
    clocks, _, _, _ = run_history(operations)
    base = clocks[0]
    ctx = dvv.join(base)
    first = dvv.update(base, ctx, "x", "a")
    second = dvv.update(base, ctx, "y", "b")
    merged = dvv.sync(first, second)
    assert {"x", "y"} <= set(dvv.values(merged))
    # The same actor coordinating two writes over the same stale context keeps both too.
    again = dvv.update(first, ctx, "z", "a")
    assert {"x", "z"} <= set(dvv.values(again))


@given(ops)
def test_write_with_read_context_supersedes_what_it_saw(operations):
    clocks, _, _, _ = run_history(operations)
    for clock in clocks:
        written = dvv.update(clock, dvv.join(clock), "new", "b")
        assert dvv.values(written) == ["new"]
        assert dvv.less(clock, written)


@given(ops, st.data())
def test_sync_is_commutative_associative_idempotent(operations, data):
    _, _, _, produced = run_history(operations)
    a = data.draw(st.sampled_from(produced))
    b = data.draw(st.sampled_from(produced))
    c = data.draw(st.sampled_from(produced))
    assert dvv.sync(a, b) == dvv.sync(b, a)
    assert dvv.sync(dvv.sync(a, b), c) == dvv.sync(a, dvv.sync(b, c))
    assert dvv.sync(a, a) == a
    assert dvv.sync(a, dvv.sync(a, b)) == dvv.sync(a, b)


@given(ops)
def test_lww_keeps_one_value_and_the_whole_history(operations):
    clocks, _, _, _ = run_history(operations)
    for clock in clocks:
        collapsed = dvv.lww(clock, key=lambda v: v)
        assert dvv.join(collapsed) == dvv.join(clock)
        if dvv.values(clock):
            assert dvv.values(collapsed) == [max(dvv.values(clock))]
        # Whatever supersedes the collapsed object supersedes every sibling it replaced.
        later = dvv.update(collapsed, dvv.join(collapsed), "later", "c")
        assert dvv.values(dvv.sync(clock, later)) == ["later"]


def test_context_unknown_to_the_coordinator_still_discards_what_the_client_saw():
    stored = dvv.update(dvv.EMPTY, {}, "v1", "a")
    # A client read v1 and a newer v2 from another replica; this replica only knows v1.
    elsewhere = dvv.update(stored, dvv.join(stored), "v2", "b")
    written = dvv.update(stored, dvv.join(elsewhere), "v3", "a")
    assert dvv.values(dvv.sync(written, elsewhere)) == ["v3"]


# ---------------------------------------------------------------- compare

MIRROR = {
    "equal": "equal",
    "local_ahead": "remote_ahead",
    "remote_ahead": "local_ahead",
    "concurrent": "concurrent",
}


def newest(value):
    return value


@st.composite
def clock_pairs(draw):
    """Two clocks from one history, each possibly collapsed as allow_mult=false stores it."""
    _, _, _, produced = run_history(draw(ops))
    pair = []
    for _ in range(2):
        clock = draw(st.sampled_from(produced))
        pair.append(dvv.lww(clock, newest) if draw(st.booleans()) else clock)
    return pair


@given(clock_pairs())
def test_compare_is_antisymmetric(pair):
    a, b = pair
    assert dvv.compare(b, a) == MIRROR[dvv.compare(a, b)]


@given(clock_pairs())
def test_compare_is_equal_exactly_when_the_clocks_are_the_same(pair):
    a, b = pair
    assert (dvv.compare(a, b) == "equal") == (tictac.version(a) == tictac.version(b))


@given(clock_pairs(), st.booleans())
def test_a_merge_descends_both_sides(pair, allow_mult):
    a, b = pair
    merged = dvv.sync(a, b) if allow_mult else dvv.lww(dvv.sync(a, b), newest)
    assert dvv.compare(merged, a) in ("equal", "local_ahead")
    assert dvv.compare(merged, b) in ("equal", "local_ahead")


@given(clock_pairs())
def test_compare_says_what_merging_would_change(pair):
    local, remote = pair
    order = dvv.compare(local, remote)
    merged = tictac.version(dvv.sync(local, remote))
    changes_local = merged != tictac.version(local)
    changes_remote = merged != tictac.version(remote)
    assert changes_local == (order in ("remote_ahead", "concurrent"))
    assert changes_remote == (order in ("local_ahead", "concurrent"))


@given(ops)
def test_compare_follows_the_causal_history(operations):
    clocks, seen, _, _ = run_history(operations)
    for i in range(3):
        for j in range(3):
            order = dvv.compare(clocks[i], clocks[j])
            if order == "local_ahead":
                assert seen[i] > seen[j]
            elif order == "remote_ahead":
                assert seen[i] < seen[j]
            elif order == "concurrent":
                assert not seen[i] <= seen[j] and not seen[j] <= seen[i]
