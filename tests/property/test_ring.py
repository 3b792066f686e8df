"""Property tests of the ring: hashing, claim balance/distinctness/movement, preference lists."""

from __future__ import annotations

from math import ceil

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spinekv.ring import (
    RING_TOP,
    Ring,
    claim,
    hash_key,
    partition_for,
    preference_list,
    primaries,
    ring_violations,
)

RING_SIZES = [8, 16, 32, 64, 128, 256]
GRID_RING_SIZES = [8, 16, 32, 64, 128, 256, 512, 1024]

parts = st.binary(max_size=12)
triples = st.tuples(parts, parts, parts)
ring_sizes = st.sampled_from(RING_SIZES)
n_vals = st.integers(1, 5)
# Random names, so nothing can lean on the order nodes join in or on "n00" < "n01".
node_names = st.text(alphabet="abcdefghijklmnop", min_size=1, max_size=3)


def members(min_size: int = 1, max_size: int = 24) -> st.SearchStrategy[list[str]]:
    return st.lists(node_names, min_size=min_size, max_size=max_size, unique=True)


def distinct_is_possible(ring_size: int, nodes: int, n_val: int) -> bool:
    """claim's documented condition for every n_val window to have n_val distinct owners."""
    return nodes >= n_val and ceil(ring_size / nodes) * n_val <= ring_size


def assert_even(ring: Ring, nodes: list[str]) -> None:
    """Only nodes own partitions, each floor(Q/M) or ceil(Q/M) of them."""
    shares = ring.shares()
    assert set(shares) <= set(nodes)
    counts = [shares.get(node, 0) for node in nodes]
    assert max(counts) - min(counts) <= 1


def moved(before: Ring, after: Ring) -> list[int]:
    return [p for p, (x, y) in enumerate(zip(before.owners, after.owners, strict=True)) if x != y]


# --- hashing -------------------------------------------------------------------------------


@given(triples, ring_sizes)
def test_hash_and_partition_are_in_range_and_deterministic(triple, ring_size):
    h = hash_key(*triple)
    assert 0 <= h < RING_TOP
    assert hash_key(*triple) == h
    p = partition_for(h, ring_size)
    assert 0 <= p < ring_size
    assert p * (RING_TOP // ring_size) <= h < (p + 1) * (RING_TOP // ring_size)


@given(triples, triples)
def test_distinct_triples_hash_differently(first, second):
    assume(first != second)
    assert hash_key(*first) != hash_key(*second)


@given(parts, parts, parts)
def test_moving_bytes_across_a_boundary_changes_the_hash(a, b, c):
    assume(b)
    assert hash_key(a, b, c) != hash_key(a + b[:1], b[1:], c)
    assert hash_key(a, b, c) != hash_key(a, b[:-1], b[-1:] + c)


@given(st.integers(0, RING_TOP - 1))
def test_partitions_nest_as_the_ring_grows(h):
    # Doubling the ring splits every partition in two, so keys only move to a child.
    for ring_size in GRID_RING_SIZES:
        assert partition_for(h, 2 * ring_size) // 2 == partition_for(h, ring_size)


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


# --- preference lists ----------------------------------------------------------------------

clusters = st.tuples(st.sampled_from([16, 32, 64]), n_vals, members(1, 10))


@settings(max_examples=60)
@given(clusters, st.data())
def test_with_everyone_up_the_list_is_n_distinct_primaries(cluster, data):
    ring_size, n_val, nodes = cluster
    assume(distinct_is_possible(ring_size, len(nodes), n_val))
    ring = claim(nodes, ring_size, n_val)
    partition = data.draw(st.integers(0, ring_size - 1))
    prefs = preference_list(ring, partition, n_val, set(nodes))
    assert prefs == primaries(ring, partition, n_val)
    assert [e.partition for e in prefs] == [(partition + i) % ring_size for i in range(n_val)]
    assert len({e.node for e in prefs}) == n_val
    assert all(e.primary for e in prefs)


@settings(max_examples=100)
@given(clusters, st.data())
def test_down_nodes_are_replaced_by_fallbacks_for_their_partitions(cluster, data):
    ring_size, n_val, nodes = cluster
    assume(distinct_is_possible(ring_size, len(nodes), n_val))
    ring = claim(nodes, ring_size, n_val)
    partition = data.draw(st.integers(0, ring_size - 1))
    down = data.draw(st.sets(st.sampled_from(nodes)))
    up = set(nodes) - down
    prefs = preference_list(ring, partition, n_val, up)
    assert prefs == preference_list(ring, partition, n_val, lambda node: node in up)

    wanted = primaries(ring, partition, n_val)
    assert not any(e.node in down for e in prefs)
    assert len(prefs) == (n_val if up else 0)
    # Every primary partition is served exactly once: by its owner if up, else a fallback.
    assert sorted(e.partition for e in prefs) == sorted(e.partition for e in wanted) or not up
    live = [e for e in wanted if e.node in up]
    assert prefs[: len(live)] == live
    fallbacks = prefs[len(live) :]
    down_partitions = [e.partition for e in wanted if e.node in down]
    assert [e.partition for e in fallbacks] == (down_partitions if up else [])
    assert not any(e.primary for e in fallbacks)
    if len(up) >= n_val:
        assert len({e.node for e in prefs}) == n_val


@settings(max_examples=60)
@given(clusters, st.data())
def test_a_fallback_is_the_first_unused_up_owner_clockwise(cluster, data):
    ring_size, n_val, nodes = cluster
    assume(distinct_is_possible(ring_size, len(nodes), n_val) and len(nodes) > n_val)
    ring = claim(nodes, ring_size, n_val)
    partition = data.draw(st.integers(0, ring_size - 1))
    wanted = primaries(ring, partition, n_val)
    victim = data.draw(st.sampled_from(wanted))
    prefs = preference_list(ring, partition, n_val, lambda node: node != victim.node)
    in_list = {e.node for e in wanted} - {victim.node}
    after_primaries = ((partition + n_val + i) % ring_size for i in range(ring_size))
    expected = next(
        ring.owners[p]
        for p in after_primaries
        if ring.owners[p] != victim.node and ring.owners[p] not in in_list
    )
    assert prefs[-1].partition == victim.partition
    assert prefs[-1].node == expected
    assert not prefs[-1].primary
