"""The reaper's decisions: reap only a tombstone every primary holds alike, else say why not."""

from __future__ import annotations

from spinekv import object as riak_object
from spinekv import tictac
from spinekv.object import Content
from spinekv.quorum import Failed, Found, NotFound
from spinekv.reaping import (
    CHANGED,
    Outcome,
    ReapOutcome,
    Tally,
    confirmed,
    deleted_at_us,
    held_back,
    judge,
    missing_primary,
    same_tombstone_everywhere,
)
from spinekv.ring import PrefEntry


def written(value: bytes | None, actor: str = "a", base=None):
    content = riak_object.tombstone(7) if value is None else Content(value)
    context = riak_object.context(base) if base is not None else {}
    return riak_object.write(base, context, content, actor, allow_mult=True, last_write_wins=False)


LIVE = written(b"v")
DEAD = written(None, base=LIVE)
OTHER_DEAD = written(None, "b", base=LIVE)  # a delete of the same value by another actor


def test_a_primary_missing_from_the_preference_list_defers():
    wanted = [PrefEntry(0, "n1", True), PrefEntry(1, "n2", True), PrefEntry(2, "n3", True)]
    assert missing_primary(wanted, wanted) is None
    with_fallback = [wanted[0], wanted[2], PrefEntry(1, "n4", False)]
    assert missing_primary(wanted, with_fallback) == ReapOutcome(
        Outcome.DEFERRED, "primary n2 down"
    )
    assert missing_primary(wanted, wanted[:2]) == ReapOutcome(Outcome.DEFERRED, "primary n3 down")


def test_the_same_tombstone_on_every_primary_is_reaped_at_its_version():
    assert judge([DEAD, DEAD, DEAD]) == tictac.version(DEAD)


def test_anything_else_is_not_reaped_and_says_why():
    assert judge([None, None, None]) == ReapOutcome(Outcome.GONE)
    assert judge([DEAD, LIVE, DEAD]) == ReapOutcome(Outcome.NOT_TOMBSTONE)
    assert judge([DEAD, DEAD, None]) == ReapOutcome(Outcome.DEFERRED, "replicas differ")
    assert judge([DEAD, OTHER_DEAD, DEAD]) == ReapOutcome(Outcome.DEFERRED, "replicas differ")
    # A primary that cannot answer defers, even when the others agree.
    assert judge([DEAD, Failed("n2 (primary): Unreachable"), DEAD]) == ReapOutcome(
        Outcome.DEFERRED, "n2 (primary): Unreachable"
    )


def test_reaped_only_when_every_primary_removed_its_copy():
    assert confirmed([True, True, True]) == ReapOutcome(Outcome.REAPED)
    assert confirmed([True, False, True]) == CHANGED
    assert CHANGED.outcome is Outcome.DEFERRED


def test_a_get_points_the_reaper_at_a_tombstone_held_alike_by_every_primary():
    found = [Found(DEAD), Found(DEAD), Found(DEAD)]
    assert same_tombstone_everywhere(found, [True, True, True])
    assert not same_tombstone_everywhere(found, [True, True, False])  # a fallback answered
    assert not same_tombstone_everywhere([Found(DEAD), Found(OTHER_DEAD)], [True, True])
    assert not same_tombstone_everywhere([Found(DEAD), Found(LIVE)], [True, True])
    assert not same_tombstone_everywhere([Found(DEAD), NotFound()], [True, True])
    assert not same_tombstone_everywhere([Found(DEAD), Failed("x")], [True, True])
    assert not same_tombstone_everywhere([], [])


def test_a_tally_counts_outcomes_and_the_reasons_for_deferring():
    tally = Tally(found=4)
    for result in (
        ReapOutcome(Outcome.REAPED),
        ReapOutcome(Outcome.DEFERRED, "primary n3 down"),
        ReapOutcome(Outcome.DEFERRED, "primary n3 down"),
        ReapOutcome(Outcome.GONE),
    ):
        tally.add(result)
    assert tally.progress() == {
        "found": 4,
        "done": 4,
        "reaped": 1,
        "deferred": 2,
        "not_tombstone": 0,
        "gone": 1,
    }
    assert tally.final()["deferred_reasons"] == {"primary n3 down": 2}


def test_the_tombstone_was_written_when_its_newest_sibling_was():
    assert deleted_at_us([None, DEAD, DEAD]) == 7
    later = riak_object.write(
        None, {}, riak_object.tombstone(19), "c", allow_mult=True, last_write_wins=False
    )
    both = riak_object.merge(DEAD, later, allow_mult=True)  # two concurrent deletes
    assert deleted_at_us([both, both]) == 19


def test_a_member_whose_queue_holds_the_key_defers_the_reap_to_try_again():
    assert held_back([None, None, None]) is None
    assert held_back([None, "replication queue 'dr' on n2 is behind", "n3 unknown"]) == (
        ReapOutcome(Outcome.DEFERRED, "replication queue 'dr' on n2 is behind", replicating=True)
    )
    assert not ReapOutcome(Outcome.DEFERRED, "replicas differ").replicating
