"""Tombstone reaping decisions, free of I/O: reap only what every primary holds alike.

A tombstone may be removed only once every primary of its key holds the same one (the
same causal clock, digested by tictac.version). Removing it while a primary is down or
behind would let that primary's older copy come back through read repair or
anti-entropy. The coordinator reads each primary's copy, asks `judge` whether to reap,
sends the reaps, and asks `confirmed` what came of them.

With replication, a tombstone also waits until every sink of its key has it: reaped
sooner, a sink would keep the live value, and full-sync would copy it back. Before the
reaps go out the coordinator asks each member whether its queues still hold the key
(`held_back` turns the answers into an outcome), and after a delete it asks again at
REPLICATION_RETRIES' delays.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import object as riak_object
from . import tictac
from .dvv import DVVSet
from .quorum import Failed, Found, Reply
from .ring import PrefEntry


class Outcome(enum.StrEnum):
    REAPED = "reaped"
    DEFERRED = "deferred"  # left for later: the reason says why
    NOT_TOMBSTONE = "not_tombstone"  # some primary holds a live value
    GONE = "gone"  # no primary holds anything


@dataclass(frozen=True, slots=True)
class ReapOutcome:
    outcome: Outcome
    reason: str = ""
    replicating: bool = False  # deferred until a sink has the delete: worth trying again soon


# One primary's copy as read: the object, None if it holds none, or why it could not answer.
Copy = DVVSet | None | Failed

CHANGED = ReapOutcome(Outcome.DEFERRED, "changed while reaping")
# Seconds between a deleting node's tries to reap while a queue holds the delete (about a
# minute in all); after that a later GET or the operator's reap tries again.
REPLICATION_RETRIES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def missing_primary(wanted: Sequence[PrefEntry], prefs: Sequence[PrefEntry]) -> ReapOutcome | None:
    """DEFERRED while a primary (`wanted`) is not in the preference list, which then holds a
    fallback or nobody in its place; else None."""
    for entry in wanted:
        if entry not in prefs:
            return ReapOutcome(Outcome.DEFERRED, f"primary {entry.node} down")
    return None


def judge(copies: Sequence[Copy]) -> ReapOutcome | bytes:
    """The version every primary's copy shares, to reap; else the outcome that stops it."""
    for copy in copies:
        if isinstance(copy, Failed):
            return ReapOutcome(Outcome.DEFERRED, copy.reason)
    held = [copy for copy in copies if copy is not None]
    if not held:
        return ReapOutcome(Outcome.GONE)
    if not all(riak_object.is_tombstone(copy) for copy in held):
        return ReapOutcome(Outcome.NOT_TOMBSTONE)
    versions = {tictac.version(copy) for copy in held}
    if len(held) < len(copies) or len(versions) > 1:
        # Read repair or anti-entropy will make them alike; reap after that.
        return ReapOutcome(Outcome.DEFERRED, "replicas differ")
    return versions.pop()


def deleted_at_us(copies: Sequence[Copy]) -> int:
    """When the tombstone `judge` agreed on was written: its newest sibling's timestamp
    (sibling deletes were queued each on its own node, the newest last)."""
    held = next(copy for copy in copies if isinstance(copy, DVVSet))
    return max(content.last_modified_us for content in riak_object.contents(held))


def held_back(answers: Sequence[str | None]) -> ReapOutcome | None:
    """DEFERRED with the first reason a member gave for its queues holding the key (None
    from a member: nothing of the key left there); None when no member holds it back."""
    for reason in answers:
        if reason is not None:
            return ReapOutcome(Outcome.DEFERRED, reason, replicating=True)
    return None


def confirmed(removed: Sequence[bool]) -> ReapOutcome:
    """REAPED when every primary removed its copy; a write that landed between the read and
    the reap kept some copy, and a later reap will look again."""
    return ReapOutcome(Outcome.REAPED) if all(removed) else CHANGED


def same_tombstone_everywhere(replies: Sequence[Reply], primary: Sequence[bool]) -> bool:
    """Whether a GET's replies (every one in, all from primaries) show one tombstone alike:
    then the reaper has a reason to look, as Riak's GET does."""
    if not replies or not all(primary):
        return False
    if not all(isinstance(r, Found) and riak_object.is_tombstone(r.obj) for r in replies):
        return False
    return len({tictac.version(r.obj) for r in replies}) == 1  # type: ignore[union-attr]


@dataclass
class Tally:
    """What an operator's reap has done so far: outcomes counted, deferrals by reason."""

    found: int
    done: int = 0
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, result: ReapOutcome) -> None:
        self.done += 1
        self.counts[result.outcome] += 1
        if result.outcome is Outcome.DEFERRED:
            self.reasons[result.reason] = self.reasons.get(result.reason, 0) + 1

    def progress(self) -> dict[str, int]:
        return {
            "found": self.found,
            "done": self.done,
            **{str(o): n for o, n in self.counts.items()},
        }

    def final(self) -> dict:
        return {**self.progress(), "deferred_reasons": dict(sorted(self.reasons.items()))}
