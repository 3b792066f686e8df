"""Handoff never drops a key that changed after it was sent, and resumes what is left."""

from __future__ import annotations

import random

from spinekv import ringstate
from spinekv.clock import SystemClock
from spinekv.node import messages
from spinekv.node.handoff import Handoff
from spinekv.node.vnode import Vnodes
from spinekv.storage.memory import MemoryBackend
from spinekv.transport.base import Unreachable


class FakeMembership:
    def __init__(self, owner: str = "owner") -> None:
        self.state = ringstate.bootstrap([owner], 8, 1)
        self.clock = SystemClock()

    @property
    def ring(self):
        return self.state.effective

    def mark_done(self, partition: int) -> None:
        self.state = self.state.mark_done(partition).finalised()

    def is_up(self, node: str) -> bool:
        return True


class RecordingTransport:
    """Accepts handoff batches; can write to the sender mid-transfer or fail a batch."""

    def __init__(self, backend: MemoryBackend, fail_after: int | None = None) -> None:
        self.received: dict[bytes, bytes] = {}
        self.backend = backend
        self.fail_after = fail_after
        self.batches = 0
        self.on_batch = None

    async def request(self, peer, message, timeout):
        sent = messages.decode(message)
        assert isinstance(sent, messages.HandoffBatch) and peer == "owner"
        partition, batch = sent.partition, sent.items
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise Unreachable("owner went away")
        self.batches += 1
        for okey, value in batch:
            self.received[okey] = value
        if self.on_batch:
            self.on_batch(partition)
        return True


def make(backend, transport, batch=2):
    vnodes = Vnodes("fallback", backend, random.Random(1))
    return Handoff(
        "fallback", FakeMembership(), vnodes, transport, lambda t, b: True, batch_objects=batch
    )


async def test_a_write_during_transfer_is_kept_and_sent_next_round():
    backend = MemoryBackend()
    for i in range(4):
        backend.put(3, b"k%d" % i, b"v%d" % i)
    transport = RecordingTransport(backend)

    def write_during_first_batch(partition):
        if transport.batches == 1:
            backend.put(partition, b"k0", b"newer")  # arrives after k0 was read

    transport.on_batch = write_during_first_batch
    handoff = make(backend, transport)
    assert await handoff.run_once() == 4
    assert [k for k, _ in backend.fold(3)] == [b"k0"]  # kept, not lost
    assert await handoff.run_once() == 1
    assert transport.received[b"k0"] == b"newer"
    assert backend.partitions() == []


async def test_an_interrupted_transfer_resumes_with_what_is_left():
    backend = MemoryBackend()
    for i in range(5):
        backend.put(6, b"k%d" % i, b"v")
    transport = RecordingTransport(backend, fail_after=1)
    handoff = make(backend, transport)
    await handoff.run_once()
    assert len(list(backend.fold(6))) == 3  # the first batch of 2 went home
    assert handoff.stats.completed[-1].error
    transport.fail_after = None
    await handoff.run_once()
    assert backend.partitions() == []
    assert len(transport.received) == 5


async def test_owned_partitions_are_not_handed_off():
    backend = MemoryBackend()
    backend.put(1, b"k", b"v")
    handoff = make(backend, RecordingTransport(backend))
    handoff.membership = FakeMembership("fallback")
    assert handoff.pending() == []
    assert await handoff.run_once() == 0


async def test_ownership_transfer_moves_the_partition_then_marks_it_done():
    backend = MemoryBackend()
    for p in (2, 5):
        for i in range(3):
            backend.put(p, b"k%d" % i, b"v")
    handoff = make(backend, RecordingTransport(backend))
    membership = FakeMembership("fallback")
    # A commit that gives every partition to "owner": "fallback" is leaving.
    membership.state = membership.state.stage("owner", "join", 1, {"owner", "fallback"})
    membership.state = membership.state.stage("fallback", "leave", 2, {"owner", "fallback"})
    membership.state = membership.state.commit()
    handoff.membership = membership
    assert {(p, t, k) for p, t, k in handoff.pending()} == {
        (p, "owner", "ownership") for p in range(8)
    }
    assert await handoff.run_once() == 6
    assert backend.partitions() == []
    assert membership.state.pending_moves() == []
    assert membership.state.status("fallback") == ringstate.EXITING
    assert membership.ring.owners == ("owner",) * 8
    kinds = {t.kind for t in handoff.stats.completed}
    assert kinds == {"ownership"}


async def test_data_arriving_for_a_pending_move_is_not_sent_back():
    """The new owner of a moving partition keeps what its old owner has sent so far."""
    backend = MemoryBackend()
    backend.put(4, b"k", b"v")  # arrived from "owner", which still routes partition 4
    handoff = make(backend, RecordingTransport(backend))
    membership = FakeMembership("owner")
    membership.state = membership.state.stage("fallback", "join", 1, {"owner", "fallback"})
    membership.state = membership.state.commit()
    assert membership.state.target[4] == "fallback"  # moving here, not yet done
    handoff.membership = membership
    assert all(p != 4 for p, _, _ in handoff.pending())
    await handoff.run_once()
    assert backend.get(4, b"k") == b"v"


async def test_batches_are_cut_by_bytes_so_each_fits_a_frame():
    backend = MemoryBackend()
    for i in range(6):
        backend.put(4, b"k%d" % i, b"x" * 400)
    sizes: list[int] = []
    transport = RecordingTransport(backend)

    async def recording(peer, message, timeout):
        sizes.append(sum(len(k) + len(v) for k, v in messages.decode(message).items))
        return await RecordingTransport.request(transport, peer, message, timeout)

    transport.request = recording  # type: ignore[method-assign]
    vnodes = Vnodes("fallback", backend, random.Random(1))
    handoff = Handoff(
        "fallback", FakeMembership(), vnodes, transport, lambda t, b: True, batch_bytes=1000
    )
    assert await handoff.run_once() == 6
    # 402 bytes an item: two fit in 1000, a third would not.
    assert sizes == [804, 804, 804]
    assert len(transport.received) == 6
