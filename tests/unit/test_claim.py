"""Concrete examples of claim: layouts, membership changes, what it refuses."""

from __future__ import annotations

import pytest

from spinekv.claim import claim
from spinekv.ring import Ring, ring_violations

FIVE = ["a", "b", "c", "d", "e"]


def moved(before: Ring, after: Ring) -> list[int]:
    return [p for p, (x, y) in enumerate(zip(before.owners, after.owners, strict=True)) if x != y]


@pytest.mark.parametrize("ring_size", [0, 3, 48, 100])
def test_ring_sizes_must_be_powers_of_two(ring_size):
    with pytest.raises(ValueError):
        claim(FIVE, ring_size, 3)


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
