"""Property tests of claim: balance, distinct windows, movement on joins and leaves."""

from __future__ import annotations

from math import ceil

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spinekv.claim import claim
from spinekv.ring import Ring, ring_violations

from .rings import distinct_is_possible, members, n_vals, node_names

ring_sizes = st.sampled_from([8, 16, 32, 64, 128, 256])
GRID_RING_SIZES = [8, 16, 32, 64, 128, 256, 512, 1024]


def assert_even(ring: Ring, nodes: list[str]) -> None:
    """Only nodes own partitions, each floor(Q/M) or ceil(Q/M) of them."""
    shares = ring.shares()
    assert set(shares) <= set(nodes)
    counts = [shares.get(node, 0) for node in nodes]
    assert max(counts) - min(counts) <= 1


def moved(before: Ring, after: Ring) -> list[int]:
    return [p for p, (x, y) in enumerate(zip(before.owners, after.owners, strict=True)) if x != y]


# --- fresh claim ---------------------------------------------------------------------------


@settings(max_examples=60)
@given(ring_sizes, n_vals, members())
def test_fresh_claim_is_even_and_distinct_when_possible(ring_size, n_val, nodes):
    assume(n_val <= ring_size)
    ring = claim(nodes, ring_size, n_val)
    assert_even(ring, nodes)
    violations = ring_violations(ring, n_val)
    assert (violations == []) == distinct_is_possible(ring_size, len(nodes), n_val)


def test_fresh_claim_meets_the_distinctness_condition_exactly_over_the_grid():
    """Distinct windows iff M >= n and ceil(Q/M) * n <= Q, for every grid point.

    The condition is also necessary: a node owning ceil(Q/M) partitions needs n slots of
    its own around each of them.
    """
    for ring_size in GRID_RING_SIZES:
        for n_val in range(1, 6):
            for count in range(1, min(ring_size, 24) + 1):
                nodes = [f"n{i:02d}" for i in range(count)]
                ring = claim(nodes, ring_size, n_val)
                assert_even(ring, nodes)
                clean = ring_violations(ring, n_val) == []
                assert clean == distinct_is_possible(ring_size, count, n_val), (
                    ring_size,
                    count,
                    n_val,
                )


def test_distinct_windows_are_possible_for_every_larger_cluster_on_the_grid():
    # Spelled out so the guarantee reads plainly: M > n fails only for Q = 8 with n = 5.
    failing = [
        (ring_size, count, n_val)
        for ring_size in GRID_RING_SIZES
        for n_val in range(1, 6)
        for count in range(n_val + 1, min(ring_size, 24) + 1)
        if not distinct_is_possible(ring_size, count, n_val)
    ]
    assert failing == [(8, 6, 5), (8, 7, 5)]


@settings(max_examples=40)
@given(ring_sizes, n_vals, members(), st.randoms(use_true_random=False))
def test_claim_is_deterministic_and_ignores_member_order(ring_size, n_val, nodes, rnd):
    assume(n_val <= ring_size)
    shuffled = list(nodes)
    rnd.shuffle(shuffled)
    assert claim(shuffled, ring_size, n_val) == claim(nodes, ring_size, n_val)
    previous = claim(nodes[: max(1, len(nodes) // 2)], ring_size, n_val)
    assert claim(shuffled, ring_size, n_val, previous) == claim(nodes, ring_size, n_val, previous)


@settings(max_examples=30)
@given(ring_sizes, n_vals, members())
def test_claiming_again_with_the_same_members_moves_nothing(ring_size, n_val, nodes):
    assume(n_val <= ring_size)
    ring = claim(nodes, ring_size, n_val)
    again = claim(nodes, ring_size, n_val, previous=ring)
    assert again == ring or ring_violations(ring, n_val)


# --- joins ---------------------------------------------------------------------------------


def assert_join_moves_only_the_share(before: Ring, after: Ring, newcomer: str, count: int):
    """count is the cluster size after the join."""
    changed = moved(before, after)
    assert len(changed) <= ceil(after.ring_size / count)
    assert {after.owners[p] for p in changed} <= {newcomer}


@settings(max_examples=25)
@given(
    st.sampled_from([32, 64, 128, 256]),
    n_vals,
    st.lists(node_names, min_size=12, max_size=12, unique=True),
)
def test_joins_move_only_the_newcomers_share(ring_size, n_val, names):
    ring = claim(names[: n_val + 1], ring_size, n_val)
    for count in range(n_val + 2, len(names) + 1):
        nodes = names[:count]
        after = claim(nodes, ring_size, n_val, previous=ring)
        assert_even(after, nodes)
        assert ring_violations(after, n_val) == []
        assert_join_moves_only_the_share(ring, after, names[count - 1], count)
        ring = after


def test_join_sequences_over_the_grid_never_fall_back():
    for ring_size in [32, 64, 128, 256]:
        for n_val in range(1, 6):
            names = [f"n{i:02d}" for i in range(12)]
            ring = claim(names[: n_val + 1], ring_size, n_val)
            for count in range(n_val + 2, 13):
                after = claim(names[:count], ring_size, n_val, previous=ring)
                assert ring_violations(after, n_val) == [], (ring_size, n_val, count)
                assert_join_moves_only_the_share(ring, after, names[count - 1], count)
                ring = after


# --- leaves and other changes --------------------------------------------------------------


@settings(max_examples=40)
@given(st.sampled_from([32, 64, 128, 256]), n_vals, members(3, 16), st.data())
def test_a_leave_moves_the_leavers_partitions_and_few_others(ring_size, n_val, nodes, data):
    """Every partition of the leaver moves; others only as relays for its stripe neighbours.

    The 2(n-1) nodes next to the leaver in every stripe share windows with all of its
    partitions, so none of them can take one; whatever they must grow by arrives through
    a relay (they take from a node that takes a leaver's partition), one extra move each.
    """
    assume(len(nodes) - 1 >= 2 * n_val)
    assume(distinct_is_possible(ring_size, len(nodes) - 1, n_val))
    before = claim(nodes, ring_size, n_val)
    leaver = data.draw(st.sampled_from(nodes))
    survivors = [node for node in nodes if node != leaver]
    after = claim(survivors, ring_size, n_val, previous=before)
    assert_even(after, survivors)
    assert ring_violations(after, n_val) == []
    orphans = before.partitions_of(leaver)
    changed = moved(before, after)
    assert set(orphans) <= set(changed)
    neighbour_growth = ceil(ring_size / len(survivors)) - ring_size // len(nodes)
    assert len(changed) - len(orphans) <= 2 * (2 * (n_val - 1)) * neighbour_growth


@settings(max_examples=40)
@given(st.sampled_from([16, 32, 64, 128]), n_vals, members(2, 12), members(1, 12))
def test_any_membership_change_gives_an_even_ring_distinct_when_possible(
    ring_size, n_val, old, new
):
    assume(n_val <= ring_size)
    before = claim(old, ring_size, n_val)
    after = claim(new, ring_size, n_val, previous=before)
    assert_even(after, new)
    assert (ring_violations(after, n_val) == []) == distinct_is_possible(
        ring_size, len(set(new)), n_val
    )
    assert after == claim(new, ring_size, n_val, previous=before)
