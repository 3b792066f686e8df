"""Handoff: data a node holds for partitions it does not own goes to the owner.

Two kinds, one mechanism. Hinted: a fallback vnode stores a down primary's
writes under that primary's partition. Ownership: a commit gave a partition
this node owns to another node (a join or a leave). Every `interval` the node
looks for both, for owners that are up, and streams the objects over in
batches. An ownership transfer that completes is marked done in the ring
state; from then on requests route to the new owner, and anything written
here meanwhile goes over as hinted data. The owner merges each batch and makes it
durable before acknowledging; only then does the sender delete each key, and
only if its copy is unchanged since it was read. A write that lands on the
fallback mid-transfer is therefore kept and goes in a later round, and a
transfer cut short resumes with whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from .. import ringstate
from ..transport.base import Transport, TransportError
from .membership import Membership
from .messages import HandoffBatch
from .vnode import AllowMultOf, VnodeContract

log = logging.getLogger("spinekv.handoff")


@dataclass
class Transfer:
    """One partition being handed off, as the admin view shows it."""

    partition: int
    target: str
    kind: str  # hinted | ownership
    started: float
    total: int = 0  # objects in the partition when the transfer started
    objects: int = 0
    bytes: int = 0
    done: bool = False
    error: str = ""
    finished: float = 0.0


@dataclass
class HandoffStats:
    active: dict[int, Transfer] = field(default_factory=dict)
    completed: list[Transfer] = field(default_factory=list)


class Handoff:
    def __init__(
        self,
        me: str,
        membership: Membership,
        vnodes: VnodeContract,
        transport: Transport,
        allow_mult_of: AllowMultOf,
        *,
        interval: float = 2.0,
        batch_objects: int = 500,
        batch_bytes: int = 5 * 1024 * 1024,
        timeout: float = 30.0,
        max_rate: float = 2500.0,
    ) -> None:
        self.me = me
        self.membership = membership
        self.vnodes = vnodes
        self.transport = transport
        self.interval = interval
        self.batch_objects = batch_objects
        # A batch never carries more object bytes than this (one bigger object goes alone),
        # so it fits the transport's frame limit, which is sized to max_object_size.
        self.batch_bytes = batch_bytes
        self.timeout = timeout
        # Objects/s this node sends at most. Handoff is background work: unpaced, a
        # returning node's senders take a whole core and foreground requests slow by half.
        self.max_rate = max_rate
        self.stats = HandoffStats()
        self._allow_mult_of = allow_mult_of
        self._receiving = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._kick = asyncio.Event()
        self._clock = membership.clock

    def pending(self) -> list[tuple[int, str, str]]:
        """(partition, target, kind) for every transfer this node still has to make."""
        state = self.membership.state
        moves = [
            (m.partition, m.target, "ownership")
            for m in state.pending_moves()
            if m.source == self.me
        ]
        owners = state.effective.owners
        # A partition on its way here from its old owner stays: it is ours once moved.
        hinted = [
            (p, owners[p], "hinted")
            for p in self.vnodes.held()
            if owners[p] != self.me and state.target[p] != self.me
        ]
        return moves + hinted

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def drain(self, rounds: int = 5) -> None:
        """Hand off whatever is still held (a leaving node's last act); a few rounds at most."""
        for _ in range(rounds):
            if not self.pending():
                return
            await self.run_once()

    def kick(self) -> None:
        """Start a round now (a peer came back or the ring changed) instead of at the interval."""
        self._kick.set()

    async def _forever(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for swallows a cancel (stop) that
            # arrives as the kick fires, and this loop would then never end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._kick.wait()
            self._kick.clear()
            try:
                await self.run_once()
            except Exception:  # a bad round must not end handoff for good
                log.exception("handoff round failed")

    async def run_once(self) -> int:
        """Hand off every partition whose owner is up; returns objects transferred."""
        moved = 0
        for partition, target, kind in self.pending():
            if not self.membership.is_up(target):
                continue
            record = await self.transfer(partition, target, kind)
            moved += record.objects
            if kind == "ownership" and record.done:
                self.membership.mark_done(partition)
        return moved

    async def transfer(self, partition: int, target: str, kind: str = "hinted") -> Transfer:
        record = Transfer(partition, target, kind, self._clock.monotonic())
        record.total = self.vnodes.size(partition)
        self.stats.active[partition] = record
        log.info("%s handoff of partition %d to %s starting", kind, partition, target)
        try:
            batch: list[list[bytes]] = []
            size = 0
            for okey, value in self.vnodes.handoff_items(partition):
                item = len(okey) + len(value)
                if batch and size + item > self.batch_bytes:
                    await self._send(partition, target, batch, record)
                    batch, size = [], 0
                batch.append([okey, value])
                size += item
                if len(batch) >= self.batch_objects:
                    await self._send(partition, target, batch, record)
                    batch, size = [], 0
            if batch:
                await self._send(partition, target, batch, record)
            record.done = True
        except TransportError as exc:
            record.error = str(exc)
            log.warning("handoff of partition %d to %s interrupted: %s", partition, target, exc)
        finally:
            record.finished = self._clock.monotonic()
            del self.stats.active[partition]
            self.stats.completed = [*self.stats.completed[-19:], record]
        if record.done:
            log.info(
                "handoff of partition %d to %s done: %d objects", partition, target, record.objects
            )
        return record

    async def _send(
        self, partition: int, target: str, batch: list[list[bytes]], record: Transfer
    ) -> None:
        started = self._clock.monotonic()
        # The batch carries our ring state, so the receiver knows of the move (or that it
        # is done) before it holds the data, and never hands it back as misplaced.
        ring = ringstate.encode(self.membership.state)
        message = HandoffBatch(partition, batch, ring).to_wire()
        await self.transport.request(target, message, self.timeout)
        # Unchanged since it was read: the owner has it. Changed: kept for the next round.
        self.vnodes.forget(partition, batch)
        record.objects += len(batch)
        record.bytes += sum(len(v) for _, v in batch)
        if self.max_rate:
            rest = len(batch) / self.max_rate - (self._clock.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)

    # ------------------------------------------------------------------ receiving

    async def receive(self, _source: str, message: HandoffBatch) -> bool:
        """Merge a batch handed to us; answer True once it is durable."""
        # The sender's ring state first: we learn of the move before holding its data.
        self.membership.absorb(message.ring)
        # One batch at a time, in slices with a yield between: the several nodes that
        # hand off to a returning node at once must not take its whole event loop.
        items = message.items
        async with self._receiving:
            for start in range(0, len(items), 100):
                self.vnodes.receive_handoff(
                    message.partition, items[start : start + 100], self._allow_mult_of
                )
                await asyncio.sleep(0)
            await self.vnodes.flush()
            return True
