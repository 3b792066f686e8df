"""Staging, planning, committing and finishing membership changes on the pure ring state."""

from __future__ import annotations

import pytest

from spinekv import ringstate
from spinekv.ringstate import (
    EXITING,
    JOIN,
    JOINING,
    LEAVE,
    LEAVING,
    REMOVE,
    VALID,
    RingStateError,
)

KNOWN = {"n1", "n2", "n3", "n4", "n5", "n6"}


def five():
    return ringstate.bootstrap(["n1", "n2", "n3", "n4", "n5"], 64, 3)


def finish_all_moves(state):
    for move in state.pending_moves():
        state = state.mark_done(move.partition)
    return state.finalised()


def test_bootstrap_is_valid_members_and_settled():
    state = five()
    assert [s for _, s in state.members] == [VALID] * 5
    assert state.pending_moves() == []
    assert state.effective.owners == state.owners
    assert state.finalised() is state


def test_join_plan_commit_and_finish():
    state = five().stage("n6", JOIN, 1, KNOWN)
    assert state.staged_changes() == {"n6": JOIN}
    plan = state.plan()
    assert plan.joins == ("n6",)
    assert {m.target for m in plan.moves} == {"n6"}
    assert 10 <= len(plan.moves) <= 11  # the newcomer's share of 64, and nothing else
    committed = state.commit()
    assert committed.epoch == 1
    assert committed.status("n6") == JOINING
    assert committed.staged_changes() == {}
    # Until a move is done, its old owner keeps routing.
    assert committed.effective.owners == state.owners
    first = committed.pending_moves()[0]
    moved = committed.mark_done(first.partition)
    assert moved.effective.owners[first.partition] == "n6"
    done = finish_all_moves(moved)
    assert done.epoch == 2
    assert done.status("n6") == VALID
    assert done.owners == plan.target.owners
    assert done.pending_moves() == []


def test_leave_ends_exiting_then_removed():
    state = five().stage("n3", LEAVE, 1, KNOWN).commit()
    assert state.status("n3") == LEAVING
    assert all(m.source == "n3" or m.target != "n3" for m in state.pending_moves())
    assert "n3" not in state.target
    state = finish_all_moves(state)
    assert state.status("n3") == EXITING
    assert "n3" not in state.effective.owners
    gone = state.without("n3")
    assert "n3" not in gone.member_names()
    assert gone.epoch == state.epoch + 1


def test_refusals_say_why():
    state = five()
    with pytest.raises(RingStateError, match="already a member"):
        state.stage("n1", JOIN, 1, KNOWN)
    with pytest.raises(RingStateError, match=r"not a node in cluster\.toml"):
        state.stage("n9", JOIN, 1, KNOWN)
    with pytest.raises(RingStateError, match="not a member"):
        state.stage("n6", LEAVE, 1, KNOWN)
    with pytest.raises(RingStateError, match="no changes staged"):
        state.plan()
    committed = state.stage("n6", JOIN, 1, KNOWN).commit()
    with pytest.raises(RingStateError, match="still in progress"):
        committed.stage("n1", LEAVE, 2, KNOWN).plan()
    solo = ringstate.bootstrap(["n1"], 8, 1)
    with pytest.raises(RingStateError, match="no member"):
        solo.stage("n1", LEAVE, 1, KNOWN)


def test_clear_drops_staged_changes_and_stays_cleared_after_merge():
    staged = five().stage("n6", JOIN, 1, KNOWN)
    cleared = staged.clear(2)
    assert cleared.staged_changes() == {}
    assert ringstate.merge(staged, cleared).staged_changes() == {}


def test_concurrent_finalisation_agrees():
    committed = five().stage("n6", JOIN, 1, KNOWN).commit()
    a = finish_all_moves(committed)
    moves = committed.pending_moves()
    b = committed
    for move in reversed(moves):
        b = b.mark_done(move.partition)
    assert b.finalised() == a


def test_a_stale_node_adopts_the_newer_epoch():
    old = five()
    new = finish_all_moves(old.stage("n6", JOIN, 1, KNOWN).commit())
    assert ringstate.merge(old, new) == new
    assert ringstate.merge(new, old) == new


def test_shares_show_now_and_after():
    committed = five().stage("n6", JOIN, 1, KNOWN).commit()
    shares = ringstate.shares(committed)
    assert shares["n6"][0] == 0
    assert shares["n6"][1] >= 10
    assert sum(now for now, _ in shares.values()) == 64


def test_force_remove_drops_a_dead_member_without_waiting_for_its_handoff():
    state = five().stage("n4", REMOVE, 1, KNOWN)
    plan = state.plan()
    assert plan.removes == ("n4",)
    assert any("will not be handed off" in w for w in plan.warnings)
    committed = state.commit()
    assert "n4" not in committed.member_names()
    assert "n4" not in committed.effective.owners
    # Only moves between live members remain to hand off.
    assert all(m.source != "n4" for m in committed.pending_moves())
    done = finish_all_moves(committed)
    assert set(done.owners) == {"n1", "n2", "n3", "n5"}
    assert [s for _, s in done.members] == [VALID] * 4
