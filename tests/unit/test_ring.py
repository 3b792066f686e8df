"""Concrete examples of the ring: hashing, claim layouts, membership changes, preference lists."""

from __future__ import annotations

import hashlib

import pytest

from spinekv.ring import (
    RING_TOP,
    PrefEntry,
    Ring,
    claim,
    hash_key,
    partition_for,
    preference_list,
    primaries,
    ring_violations,
)

FIVE = ["a", "b", "c", "d", "e"]


def moved(before: Ring, after: Ring) -> list[int]:
    return [p for p, (x, y) in enumerate(zip(before.owners, after.owners, strict=True)) if x != y]


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
        claim(FIVE, ring_size, 3)


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


def test_five_nodes_on_64_partitions_are_even_striped_and_clean():
    ring = claim(FIVE, 64, 3)
    assert set(ring.shares().values()) == {12, 13}
    assert ring_violations(ring, 3) == []
    # Riak-like stripes: the first rounds deal the sorted nodes out in turn.
    assert ring.owners[:10] == tuple("abcdeabcde")


def test_member_order_and_duplicates_do_not_matter():
    assert claim(["e", "a", "d", "c", "b", "a"], 64, 3) == claim(FIVE, 64, 3)


def test_four_nodes_on_64_partitions_are_plain_stripes():
    assert claim(["a", "b", "c", "d"], 64, 3).owners == tuple("abcd" * 16)


def test_three_nodes_cannot_keep_three_replicas_apart_on_64_partitions():
    # 64 % 3 == 1, so some node owns 22 partitions but only has room for 21.
    ring = claim(["a", "b", "c"], 64, 3)
    assert set(ring.shares().values()) == {21, 22}
    assert 0 < len(ring_violations(ring, 3)) <= 2


def test_fewer_nodes_than_replicas_repeat_in_every_window():
    ring = claim(["a", "b"], 16, 3)
    assert ring.shares() == {"a": 8, "b": 8}
    assert ring_violations(ring, 3) == list(range(16))


def test_more_nodes_than_partitions_leaves_some_without_any():
    ring = claim([f"n{i:02d}" for i in range(12)], 8, 3)
    assert sorted(ring.shares().values()) == [1] * 8
    assert ring_violations(ring, 3) == []


def test_joining_a_fifth_node_moves_only_its_share_to_it():
    four = claim(["a", "b", "c", "d"], 64, 3)
    five = claim(FIVE, 64, 3, previous=four)
    assert len(moved(four, five)) == 12
    assert {five.owners[p] for p in moved(four, five)} == {"e"}
    assert set(five.shares().values()) == {12, 13}
    assert ring_violations(five, 3) == []


def test_replacing_a_node_hands_its_partitions_to_the_newcomer():
    before = claim(FIVE, 64, 3)
    after = claim(["a", "b", "c", "d", "f"], 64, 3, previous=before)
    assert moved(before, after) == before.partitions_of("e")
    assert after.partitions_of("f") == before.partitions_of("e")


def test_a_leave_moves_only_the_leavers_partitions_when_no_neighbour_must_grow():
    # 64 / 16 = 4 and 64 / 15 rounds down to 4 too: the 4 orphans go to nodes that fit.
    nodes = [f"n{i:02d}" for i in range(16)]
    before = claim(nodes, 64, 3)
    after = claim(nodes[:5] + nodes[6:], 64, 3, previous=before)
    assert moved(before, after) == before.partitions_of("n05")
    assert ring_violations(after, 3) == []


def test_a_leave_relays_through_the_neighbours_that_must_grow():
    # n03, n04, n06, n07 flank n05's partitions yet must grow from 21-22 to 23; what
    # they cannot take from n05 directly reaches them by relays, one extra move each.
    nodes = [f"n{i:02d}" for i in range(12)]
    before = claim(nodes, 256, 3)
    after = claim(nodes[:5] + nodes[6:], 256, 3, previous=before)
    orphans = before.partitions_of("n05")
    changed = moved(before, after)
    assert set(orphans) <= set(changed)
    assert len(changed) - len(orphans) <= 2 * 4
    assert ring_violations(after, 3) == []
    assert set(after.shares().values()) == {23, 24}


def test_leaving_five_for_four_needs_more_than_the_leavers_partitions_but_stays_clean():
    # Every partition of "e" sits between d and a with b and c two slots away, so no
    # survivor can take one as it is: the claim has to shuffle neighbours too.
    before = claim(FIVE, 64, 3)
    after = claim(["a", "b", "c", "d"], 64, 3, previous=before)
    assert ring_violations(after, 3) == []
    assert after.shares() == {"a": 16, "b": 16, "c": 16, "d": 16}
    assert set(before.partitions_of("e")) <= set(moved(before, after))


def test_claim_rejects_bad_arguments():
    with pytest.raises(ValueError):
        claim([], 64, 3)
    with pytest.raises(ValueError):
        claim(FIVE, 64, 0)
    with pytest.raises(ValueError):
        claim(FIVE, 4, 5)
    with pytest.raises(ValueError):
        claim(FIVE, 64, 3, previous=claim(FIVE, 32, 3))


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
