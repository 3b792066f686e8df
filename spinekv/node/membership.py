"""Membership: the ring this node routes by and which peers it believes are up.

Static for now: every cluster.toml node with member = true owns a claimed share.
A peer is down while the transport is in reconnect backoff to it; a background
probe pings every peer each second so that a dead peer is noticed before a
client request pays for the discovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..config import ClusterConfig
from ..ring import PrefEntry, Ring, claim, preference_list
from ..transport.base import Transport, TransportError

log = logging.getLogger("spinekv.membership")


class Membership:
    def __init__(
        self, config: ClusterConfig, me: str, transport: Transport, probe_interval: float = 1.0
    ) -> None:
        self.me = me
        self._transport = transport
        self._peers = [n for n in config.node_names() if n != me]
        self._probe_interval = probe_interval
        self._probe_task: asyncio.Task | None = None
        self.ring: Ring = claim(config.members(), config.ring_size, config.n_val)

    def is_up(self, node: str) -> bool:
        return node == self.me or self._transport.is_reachable(node)

    def preflist(self, partition: int, n_val: int) -> list[PrefEntry]:
        return preference_list(self.ring, partition, n_val, self.is_up)

    def start(self) -> None:
        self._probe_task = asyncio.ensure_future(self._probe_forever())

    async def stop(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.gather(*(self._probe(peer) for peer in self._peers))
            await asyncio.sleep(self._probe_interval)

    async def _probe(self, peer: str) -> None:
        was_up = self._transport.is_reachable(peer)
        with contextlib.suppress(TransportError):
            await self._transport.request(peer, ["ping"], self._probe_interval)
        now_up = self._transport.is_reachable(peer)
        if was_up != now_up:
            log.info("peer %s is %s", peer, "up" if now_up else "down")
