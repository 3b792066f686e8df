"""Membership: this node's ring state, gossip, staged changes, and which peers are up.

Ring state (see ringstate.py) is loaded from the node's backend at start, or
bootstrapped from the cluster.toml members, and persisted on every change, so
a restarted node rejoins with what it knew. Gossip is push-pull: every
`gossip_interval` the node swaps states with one random peer, and after a
local change it pushes to every peer at once. Each side merges what it gets.

The cluster's bucket metadata (bucket types and bucket props, buckets.py)
travels in the same messages: a gossip frame is [ring state, bucket metadata],
both kept, persisted and spread the same way, each with its own join.

Failure detection: each peer is pinged every `probe_interval`; a peer is down
while the transport cannot connect to it (a dead process is seen at once, and
stays down until a ping gets through) or when no ping has succeeded for
`suspect_after` seconds (a paused or partitioned process, whose connection
stays open but silent). One successful ping brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import msgpack

from .. import buckets, ringstate
from ..buckets import BucketMeta
from ..clock import Clock, SystemClock
from ..config import ClusterConfig
from ..ring import PrefEntry, Ring, preference_list
from ..ringstate import Plan, RingState
from ..storage.base import Backend
from ..transport.base import Transport, TransportError, Unreachable
from .messages import Gossip, Ping
from .vnode import VnodeContract

log = logging.getLogger("spinekv.membership")

RING_META = "ring"
BUCKETS_META = "buckets"
_PING = Ping().to_wire()


class Membership:
    def __init__(
        self,
        config: ClusterConfig,
        me: str,
        transport: Transport,
        backend: Backend,
        vnodes: VnodeContract,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        probe_interval: float = 0.5,
        suspect_after: float = 2.0,
        gossip_interval: float = 1.0,
    ) -> None:
        self.me = me
        self._transport = transport
        self._backend = backend  # node metadata only (ring, bucket metadata)
        self._vnodes = vnodes
        self.clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._known = set(config.node_names())
        self._peers = [n for n in config.node_names() if n != me]
        self._probe_interval = probe_interval
        self._suspect_after = suspect_after
        self.gossip_interval = gossip_interval
        now = self.clock.monotonic()
        self._last_ok = dict.fromkeys(self._peers, now)
        self._suspected: set[str] = set()
        self._tasks: list[asyncio.Task] = []
        self._pushes: set[asyncio.Task] = set()
        self.on_exit: Callable[[], None] | None = None
        # Called when a peer comes back or the ring changes (handoff starts a round).
        self.listeners: list[Callable[[], None]] = []
        raw = backend.get_meta(RING_META)
        if raw is not None:
            self.state = ringstate.decode(raw)
        else:
            self.state = ringstate.bootstrap(config.members(), config.ring_size, config.n_val)
        raw = backend.get_meta(BUCKETS_META)
        self.buckets = BucketMeta() if raw is None else buckets.decode(raw)

    # ------------------------------------------------------------------ routing

    @property
    def ring(self) -> Ring:
        """The owners requests route by right now."""
        return self.state.effective

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

    # ------------------------------------------------------------------ ring state

    def update(self, incoming: RingState) -> bool:
        """Merge `incoming` into this node's state; persist and spread it if it changed."""
        merged = ringstate.merge(self.state, incoming).finalised()
        if merged == self.state:
            return False
        before = self.state
        self.state = merged
        self._backend.put_meta(RING_META, ringstate.encode(merged))
        if merged.epoch != before.epoch:
            log.info(
                "ring epoch %d: %s; %d moves pending",
                merged.epoch,
                ", ".join(f"{n} {s}" for n, s in merged.members),
                len(merged.pending_moves()),
            )
        self._push_all()
        self._notify()
        return True

    def absorb(self, raw: bytes) -> None:
        """Merge an encoded state a peer sent; ValueError if it is malformed."""
        self.update(ringstate.decode(raw))

    def receive(self, raw: bytes) -> bytes:
        """A peer's gossip: merge it, and answer with ours so the exchange is push-pull."""
        self._absorb_frame(raw)
        return self._frame()

    def serve_gossip(self, _source: str, message: Gossip) -> bytes:
        return self.receive(message.frame)

    def serve_ping(self, _source: str, _message: Ping) -> str:
        return "pong"

    def known(self) -> list[str]:
        """Every node this one knows: those in its cluster.toml and those learnt since."""
        return sorted(self._known)

    def learn(self, peer: str) -> None:
        """A peer not in this node's cluster.toml introduced itself: probe it from now on.

        A node added to the file while the cluster runs can then be joined without
        restarting the others; the transport has learnt its address from its hello.
        """
        if peer == self.me or peer in self._known:
            return
        log.info("learnt of new peer %s", peer)
        self._known.add(peer)
        self._peers.append(peer)
        self._last_ok[peer] = self.clock.monotonic()
        if self._tasks:  # started: probe it like the others
            self._tasks.append(asyncio.ensure_future(self._probe_forever(peer)))

    def update_buckets(self, incoming: BucketMeta) -> bool:
        """Merge bucket metadata (a peer's, or a local change); persist and spread it if new."""
        merged = buckets.acknowledge(self.buckets.merge(incoming), self.me, self._stamp())
        if merged == self.buckets:
            return False
        self.buckets = merged
        self._backend.put_meta(BUCKETS_META, buckets.encode(merged))
        self._push_all()
        return True

    def _frame(self) -> bytes:
        return msgpack.packb([ringstate.encode(self.state), buckets.encode(self.buckets)])

    def _absorb_frame(self, raw: bytes) -> None:
        """Merge a gossip frame; ValueError, with nothing changed, if any part is malformed."""
        ring_raw, buckets_raw = _split_frame(raw)
        ring = ringstate.decode(ring_raw)
        meta = None if buckets_raw is None else buckets.decode(buckets_raw)
        self.update(ring)
        if meta is not None:
            self.update_buckets(meta)

    def stage(self, node: str, action: str) -> RingState:
        self.update(self.state.stage(node, action, self._stamp(), self._known))
        return self.state

    def clear(self) -> RingState:
        self.update(self.state.clear(self._stamp()))
        return self.state

    def plan(self) -> Plan:
        return self.state.plan()

    def commit(self) -> RingState:
        self.update(self.state.commit())
        return self.state

    def mark_done(self, partition: int) -> None:
        self.update(self.state.mark_done(partition))

    def _stamp(self) -> int:
        return int(self.clock.time() * 1_000_000)

    # ------------------------------------------------------------------ tasks

    def start(self) -> None:
        # One probe loop per peer, so a peer that hangs cannot delay the probes of the others.
        self._tasks = [asyncio.ensure_future(self._probe_forever(p)) for p in self._peers]
        self._tasks.append(asyncio.ensure_future(self._gossip_forever()))

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._pushes]
        for task in tasks:
            task.cancel()
        for task in tasks:
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
            await self._transport.request(peer, _PING, self._suspect_after / 2)
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
            if now_up:
                self._spawn(self.exchange(peer))  # a returning peer may have missed changes
                self._notify()

    async def _gossip_forever(self) -> None:
        while True:
            await asyncio.sleep(self.gossip_interval)
            up = [p for p in self._peers if self.is_up(p)]
            if up:
                await self.exchange(self._rng.choice(up))
            await self._exit_if_done()

    async def exchange(self, peer: str) -> bool:
        """Swap ring states and bucket metadata with `peer`; False if it did not answer."""
        try:
            message = Gossip(self._frame()).to_wire()
            raw = await self._transport.request(peer, message, self._suspect_after)
        except TransportError:
            return False
        self._absorb_frame(raw)
        return True

    def _push_all(self) -> None:
        for peer in self._peers:
            if self.is_up(peer):
                self._spawn(self.exchange(peer))

    def _notify(self) -> None:
        for listener in self.listeners:
            listener()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    async def _exit_if_done(self) -> None:
        """An exiting node that holds nothing removes itself, tells everyone, and stops."""
        if self.state.status(self.me) != ringstate.EXITING or self._vnodes.held():
            return
        self.update(self.state.without(self.me))
        up = [p for p in self._peers if self.is_up(p)]
        told = await asyncio.gather(*(self.exchange(p) for p in up))
        log.info("left the cluster; told %d of %d peers; stopping", sum(told), len(up))
        if self.on_exit is not None:
            self.on_exit()


def _split_frame(raw: bytes) -> tuple[bytes, bytes | None]:
    """(ring state, bucket metadata) of a gossip frame; a bare ring state has no metadata."""
    try:
        parts = msgpack.unpackb(raw)
    except (ValueError, msgpack.UnpackException):
        return raw, None  # not a frame: ringstate.decode says what is wrong with it
    if isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, bytes) for p in parts):
        return parts[0], parts[1]
    return raw, None
