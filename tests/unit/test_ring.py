"""Concrete examples of the ring: hashing, partitions, window checks, preference lists."""

from __future__ import annotations

import hashlib

import pytest

from spinekv.ring import (
    RING_TOP,
    PrefEntry,
    Ring,
    hash_key,
    partition_for,
    preference_list,
    primaries,
    ring_violations,
)


def test_ring_top_is_the_sha1_space():
    assert RING_TOP == 2**160


def test_hash_key_is_sha1_of_length_prefixed_parts():
    encoded = b"\x00\x00\x00\x01t\x00\x00\x00\x02bk\x00\x00\x00\x00"
    expected = int.from_bytes(hashlib.sha1(encoded).digest(), "big")
    assert hash_key(b"t", b"bk", b"") == expected


def test_hash_key_keeps_shifted_boundaries_apart():
    assert hash_key(b"a", b"bc", b"") != hash_key(b"ab", b"c", b"")
    assert hash_key(b"", b"ab", b"c") != hash_key(b"", b"a", b"bc")
    assert hash_key(b"x", b"", b"") != hash_key(b"", b"x", b"") != hash_key(b"", b"", b"x")


def test_partition_for_slices_the_space_equally():
    slice_size = RING_TOP // 64
    assert partition_for(0, 64) == 0
    assert partition_for(slice_size - 1, 64) == 0
    assert partition_for(slice_size, 64) == 1
    assert partition_for(RING_TOP - 1, 64) == 63
    assert partition_for(RING_TOP - 1, 1) == 0


@pytest.mark.parametrize("h", [-1, RING_TOP])
def test_partition_for_rejects_hashes_outside_the_space(h):
    with pytest.raises(ValueError):
        partition_for(h, 64)


@pytest.mark.parametrize("ring_size", [0, 3, 48, 100])
def test_ring_sizes_must_be_powers_of_two(ring_size):
    with pytest.raises(ValueError):
        partition_for(0, ring_size)
    with pytest.raises(ValueError):
        Ring(ring_size, ("a",) * ring_size)


def test_ring_accepts_a_list_but_stores_a_tuple_of_the_right_length():
    ring = Ring(4, ["a", "b", "a", "b"])  # type: ignore[arg-type]
    assert ring.owners == ("a", "b", "a", "b")
    with pytest.raises(ValueError):
        Ring(4, ("a", "b"))


def test_ring_queries():
    ring = Ring(8, ("b", "a", "c", "a", "b", "a", "c", "a"))
    assert ring.members() == ["a", "b", "c"]
    assert ring.partitions_of("a") == [1, 3, 5, 7]
    assert ring.partitions_of("zz") == []
    assert ring.shares() == {"a": 4, "b": 2, "c": 2}
    key = (b"default", b"users", b"alice")
    assert ring.partition_of(*key) == partition_for(hash_key(*key), 8)


def test_ring_violations_are_the_windows_that_repeat_an_owner():
    # Windows of 3 from each partition, wrapping: a b a | b a c | a c c | c c a | c a b | ...
    ring = Ring(8, ("a", "b", "a", "c", "c", "a", "b", "d"))
    assert ring_violations(ring, 3) == [0, 2, 3]
    assert ring_violations(ring, 2) == [3]
    assert ring_violations(ring, 1) == []
    with pytest.raises(ValueError):
        ring_violations(ring, 9)


RING8 = Ring(8, ("a", "b", "c", "d", "a", "b", "c", "d"))


def test_primaries_wrap_around_the_ring():
    assert primaries(RING8, 6, 3) == [
        PrefEntry(6, "c", True),
        PrefEntry(7, "d", True),
        PrefEntry(0, "a", True),
    ]


def test_preference_list_with_everyone_up_is_the_primaries():
    assert preference_list(RING8, 1, 3, {"a", "b", "c", "d"}) == primaries(RING8, 1, 3)
    assert preference_list(RING8, 1, 3, lambda node: True) == primaries(RING8, 1, 3)


def test_a_down_primary_is_replaced_by_the_next_node_clockwise():
    # Primaries of 1 are b c d; partition 4 (owner a) comes next.
    assert preference_list(RING8, 1, 3, {"a", "b", "d"}) == [
        PrefEntry(1, "b", True),
        PrefEntry(3, "d", True),
        PrefEntry(2, "a", False),
    ]


def test_fallbacks_reuse_survivors_once_distinct_nodes_run_out():
    prefs = preference_list(RING8, 0, 3, {"a"})
    assert prefs == [
        PrefEntry(0, "a", True),
        PrefEntry(1, "a", False),
        PrefEntry(2, "a", False),
    ]
    assert preference_list(RING8, 0, 3, set()) == []


def test_two_survivors_share_three_slots():
    prefs = preference_list(RING8, 0, 3, {"c", "d"})
    assert [(e.partition, e.primary) for e in prefs] == [(2, True), (0, False), (1, False)]
    assert [e.node for e in prefs] == ["c", "d", "d"]
