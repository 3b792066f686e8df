"""Property tests of the ring: hashing, partitions, preference lists."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spinekv.claim import claim
from spinekv.ring import RING_TOP, hash_key, partition_for, preference_list, primaries

from .rings import distinct_is_possible, members, n_vals

RING_SIZES = [8, 16, 32, 64, 128, 256]
GRID_RING_SIZES = [8, 16, 32, 64, 128, 256, 512, 1024]

parts = st.binary(max_size=12)
triples = st.tuples(parts, parts, parts)
ring_sizes = st.sampled_from(RING_SIZES)


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
