"""dvv.compare: how a local copy stands to an incoming one, by causal clock."""

from __future__ import annotations

from spinekv import dvv

ONE = dvv.update(dvv.EMPTY, {}, "v1", "a")
TWO = dvv.update(ONE, dvv.join(ONE), "v2", "b")  # read ONE, then wrote over it
BESIDE = dvv.update(ONE, dvv.join(ONE), "v3", "c")  # read ONE too, concurrent with TWO


def test_nothing_against_nothing_is_equal():
    assert dvv.compare(None, None) == "equal"
    assert dvv.compare(None, dvv.EMPTY) == "equal"


def test_an_object_is_ahead_of_none():
    assert dvv.compare(None, ONE) == "remote_ahead"
    assert dvv.compare(ONE, None) == "local_ahead"


def test_the_same_clock_is_equal_even_when_decoded_twice():
    assert dvv.compare(ONE, dvv.DVVSet(tuple(ONE.entries))) == "equal"


def test_a_descendant_is_ahead():
    assert dvv.compare(ONE, TWO) == "remote_ahead"
    assert dvv.compare(TWO, ONE) == "local_ahead"


def test_writes_over_the_same_read_are_concurrent_and_their_merge_is_ahead_of_both():
    assert dvv.compare(TWO, BESIDE) == "concurrent"
    both = dvv.sync(TWO, BESIDE)
    assert sorted(dvv.values(both)) == ["v2", "v3"]
    assert dvv.compare(both, TWO) == "local_ahead"
    assert dvv.compare(BESIDE, both) == "remote_ahead"


def test_a_collapsed_copy_is_ahead_of_its_siblings():
    # allow_mult=false collapses siblings but keeps their history: merging the siblings
    # into the collapsed copy changes nothing, so full-sync must not call them equal.
    both = dvv.sync(TWO, BESIDE)
    collapsed = dvv.lww(both, key=lambda v: v)
    assert dvv.values(collapsed) == ["v3"]
    assert dvv.compare(collapsed, both) == "local_ahead"


def test_seen_but_superseded_events_count():
    # A clock holding no values, only history (a context), is still ahead of nothing.
    context_only = dvv.from_context({"a": 2})
    assert dvv.compare(context_only, ONE) == "local_ahead"
