"""Hinted handoff: data a node holds for partitions it does not own goes home to the owner.

A fallback vnode stores a down primary's writes under that primary's partition.
Every `interval` the node looks for such partitions whose owner is up, and
streams their objects over in batches. The owner merges each batch and makes it
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

from ..transport.base import Transport, TransportError
from .membership import Membership
from .vnode import Vnodes

log = logging.getLogger("spinekv.handoff")


@dataclass
class Transfer:
    """One partition being handed off, as the admin view shows it."""

    partition: int
    target: str
    started: float
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
        vnodes: Vnodes,
        transport: Transport,
        *,
        interval: float = 2.0,
        batch_objects: int = 500,
        timeout: float = 30.0,
    ) -> None:
        self.me = me
        self.membership = membership
        self.vnodes = vnodes
        self.transport = transport
        self.interval = interval
        self.batch_objects = batch_objects
        self.timeout = timeout
        self.stats = HandoffStats()
        self._task: asyncio.Task | None = None
        self._clock = membership.clock

    def pending(self) -> list[tuple[int, str]]:
        """(partition, owner) for every partition held here that belongs elsewhere."""
        owners = self.membership.ring.owners
        return [(p, owners[p]) for p in self.vnodes.backend.partitions() if owners[p] != self.me]

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except Exception:  # a bad round must not end handoff for good
                log.exception("handoff round failed")

    async def run_once(self) -> int:
        """Hand off every partition whose owner is up; returns objects transferred."""
        moved = 0
        for partition, owner in self.pending():
            if self.membership.is_up(owner):
                moved += await self.transfer(partition, owner)
        return moved

    async def transfer(self, partition: int, target: str) -> int:
        record = Transfer(partition, target, self._clock.monotonic())
        self.stats.active[partition] = record
        log.info("handoff of partition %d to %s starting", partition, target)
        try:
            batch: list[list[bytes]] = []
            for okey, value in self.vnodes.backend.fold(partition):
                batch.append([okey, value])
                if len(batch) >= self.batch_objects:
                    await self._send(partition, target, batch, record)
                    batch = []
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
        return record.objects

    async def _send(
        self, partition: int, target: str, batch: list[list[bytes]], record: Transfer
    ) -> None:
        await self.transport.request(target, ["handoff", partition, batch], self.timeout)
        backend = self.vnodes.backend
        for okey, value in batch:
            # Unchanged since it was read: the owner has it. Changed: keep it for next round.
            if backend.get(partition, okey) == value:
                backend.delete(partition, okey)
        record.objects += len(batch)
        record.bytes += sum(len(v) for _, v in batch)
