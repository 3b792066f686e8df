"""The reap gate's own answers: its queues, a write not yet queued, and no replication."""

from __future__ import annotations

from spinekv.config import ReplSource
from spinekv.dvv import EMPTY, update
from spinekv.node.coordinator import BKey
from spinekv.node.messages import ReplHolds
from spinekv.node.reapgate import ReapGate
from spinekv.node.replqueues import ReplQueues
from spinekv.props import BucketProps
from spinekv.replqueue import Filter
from spinekv.storage.memory import MemoryBackend

KEY = BKey(b"t", b"b", b"k")


def gate(sources, writing=frozenset()) -> tuple[ReapGate, ReplQueues]:
    queues = ReplQueues(sources, MemoryBackend(), lambda: 100.0)
    # No membership nor transport: a test that reaches them fails on None.
    return ReapGate("n1", None, None, queues, writing.__contains__, 5.0), queues  # type: ignore[arg-type]


def test_a_queued_change_of_the_key_is_held_until_acknowledged():
    here, queues = gate([ReplSource("dr", Filter())])
    queues.on_write(KEY, update(EMPTY, {}, b"v", "n1"))
    reason = (
        "replication queue 'dr' on n1 still holds a change of the key (its sink has not applied it)"
    )
    assert here.holds(KEY, after=100.0) == reason
    wire = ReplHolds([b"t", b"b", b"k"], 100.0).to_wire()
    assert here.serve("n2", ReplHolds(*wire[1:])) == reason
    assert here.holds(BKey(b"t", b"b", b"other"), after=100.0) is None
    queues.queues["dr"].ack(queues.queues["dr"].end - 1)
    assert here.holds(KEY, after=100.0) is None


def test_a_write_of_the_key_not_yet_queued_holds_it():
    here, _ = gate([ReplSource("dr", Filter())], writing=frozenset({KEY.okey}))
    assert here.holds(KEY, after=100.0) == "a write of the key is still being queued on n1"


async def test_without_replication_sources_nobody_is_asked():
    here, _ = gate([])
    assert await here.check(KEY, BucketProps(), deleted_at_us=1, timeout=5.0) is None
