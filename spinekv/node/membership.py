"""Membership: the ring this node routes by, and which peers it believes are up.

The ring is static for now: every cluster.toml node with member = true owns a
claimed share. Failure detection: each peer is pinged every `probe_interval`;
a peer is down while the transport cannot connect to it (a dead process is
seen at once, and stays down until a ping gets through) or when no ping has
succeeded for `suspect_after` seconds (a paused or partitioned process, whose
connection stays open but silent). One successful ping brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..clock import Clock, SystemClock
from ..config import ClusterConfig
from ..ring import PrefEntry, Ring, claim, preference_list
from ..transport.base import Transport, TransportError, Unreachable

log = logging.getLogger("spinekv.membership")


class Membership:
    def __init__(
        self,
        config: ClusterConfig,
        me: str,
        transport: Transport,
        *,
        clock: Clock | None = None,
        probe_interval: float = 0.5,
        suspect_after: float = 2.0,
    ) -> None:
        self.me = me
        self._transport = transport
        self.clock = clock or SystemClock()
        self._peers = [n for n in config.node_names() if n != me]
        self._probe_interval = probe_interval
        self._suspect_after = suspect_after
        now = self.clock.monotonic()
        self._last_ok = dict.fromkeys(self._peers, now)
        self._suspected: set[str] = set()
        self._tasks: list[asyncio.Task] = []
        self.ring: Ring = claim(config.members(), config.ring_size, config.n_val)

    def is_up(self, node: str) -> bool:
        if node == self.me:
            return True
        if node in self._suspected:
            return False
        if not self._transport.is_reachable(node):
            # Latch: the link failed, so the peer stays down until a probe gets an
            # answer, not merely until the transport's reconnect backoff runs out.
            self._suspected.add(node)
            return False
        return True

    def preflist(self, partition: int, n_val: int) -> list[PrefEntry]:
        return preference_list(self.ring, partition, n_val, self.is_up)

    def start(self) -> None:
        # One loop per peer, so a peer that hangs cannot delay the probes of the others.
        self._tasks = [asyncio.ensure_future(self._probe_forever(p)) for p in self._peers]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _probe_forever(self, peer: str) -> None:
        while True:
            await self.probe(peer)
            await asyncio.sleep(self._probe_interval)

    async def probe(self, peer: str) -> None:
        """Ping `peer` once and update whether it is considered up."""
        was_up = self.is_up(peer)
        try:
            await self._transport.request(peer, ["ping"], self._suspect_after / 2)
        except Unreachable:
            # Refused or dropped: certain. Down until a ping gets through, so the
            # transport's reconnect backoff expiring does not make it look up again.
            self._suspected.add(peer)
        except TransportError:
            # Silence may be a pause or a slow moment: suspect only after a grace period.
            if self.clock.monotonic() - self._last_ok[peer] >= self._suspect_after:
                self._suspected.add(peer)
        else:
            self._last_ok[peer] = self.clock.monotonic()
            self._suspected.discard(peer)
        now_up = self.is_up(peer)
        if was_up != now_up:
            log.info("peer %s is %s", peer, "up" if now_up else "down")
