"""Anti-entropy exchanges: answer peers' questions about our trees, compare ours with theirs.

Once per `[aae] tick_ms` (jittered) every built tree this node keeps is compared with
the same tree on another primary of its preference list that is up; the decisions are
aae_exchange.py's. Each key found differing twice is repaired as a read repair: a GET of
every replica through the coordinator, which merges them and writes the merge back where
a copy is missing or behind. Exchanges pause between trees while this node hands data
off; before an exchange and before each repair they wait while more client requests
wait for an answer than `[aae] pause_backlog`, for ten ticks at most per exchange.

Each tree's last exchange and its repairs of the last hour are kept for GET /admin/aae,
and totals by outcome since start for /stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..aae_exchange import (
    BRANCHES,
    IN_SYNC,
    KEYS,
    REPAIR,
    ROOT,
    SEGMENTS,
    UNCONFIRMED,
    Ask,
    Done,
    ExchangeCore,
    KeyList,
)
from ..clock import Clock
from ..props import BucketProps
from ..quorum import GetOptions
from ..ring import primaries
from ..storage.keys import split_object_key
from ..transport.base import Transport, TransportError
from .aae import AaeTrees, TreeId
from .coordinator import BKey, Coordinator
from .handoff import Handoff
from .membership import Membership
from .messages import AaeBranches, AaeKeys, AaeRoot, AaeSegments, Message

log = logging.getLogger("spinekv.exchange")

# A key list reply stops growing past this many bytes (or the frame limit's half, if smaller).
_KEY_LIST_BYTES = 1 << 20
_TIMEOUT = 30.0  # seconds for one question to a peer; a key list folds a whole vnode
_JITTER = 0.2  # a tick lasts this fraction longer or shorter at random
# Seconds between the two looks at the differing segments' keys (a tenth of a tick at
# most): long enough for a write in flight to reach every replica.
_CONFIRM_PAUSE = 1.0
_POLL = 0.1  # seconds between two looks at the request backlog
_PATIENCE_TICKS = 10  # an exchange waits at most this many ticks for the backlog to shrink
SKIPPED = "skipped"  # no peer up, a tree (ours or the peer's) unbuilt, or no answer
_HOUR = 3600.0
_REPAIRS_IN_FLIGHT = 16  # an exchange's read repairs under way at once

PropsOf = Callable[[str, str], BucketProps | None]


@dataclass(frozen=True, slots=True)
class LastExchange:
    """A tree's last exchange: when (wall clock), with whom, how it ended, keys repaired."""

    when: float
    peer: str
    outcome: str
    repaired: int = 0


def refuse(_source: str, _message: Message) -> list:
    """The answer of a node running without trees ([aae] enabled = false)."""
    return [False, "anti-entropy is off on this node"]


def _positions(values: Any, count: int) -> list[int] | None:
    """Valid tree positions below `count`, or None if any is not one."""
    if not isinstance(values, list) or not all(type(v) is int and 0 <= v < count for v in values):
        return None
    return values


class Exchanges:
    """This node's side of every exchange: the server of the Aae* messages and the driver."""

    def __init__(
        self,
        me: str,
        trees: AaeTrees,
        membership: Membership,
        handoff: Handoff,
        coordinator: Coordinator,
        transport: Transport,
        props_of: PropsOf,
        *,
        tick: float,
        max_bytes: int,
        clock: Clock,
        rng: random.Random,
        backlog: Callable[[], int],
        pause_backlog: int,
        max_repairs: int = 1000,
    ) -> None:
        self.me = me
        self._trees = trees
        self._membership = membership
        self._handoff = handoff
        self._coordinator = coordinator
        self._transport = transport
        self._props_of = props_of
        self._tick = tick
        self._max_bytes = min(_KEY_LIST_BYTES, max_bytes)
        self._clock = clock
        self._rng = rng
        self._max_repairs = max_repairs
        self._backlog = backlog
        self._pause_backlog = pause_backlog
        self.last: dict[TreeId, LastExchange] = {}
        self.repaired = 0  # keys read-repaired by this node's exchanges since it started
        # Exchanges since start by outcome: in_sync, unconfirmed, repair, skipped.
        self.outcomes: Counter[str] = Counter()
        # Per tree, (when, keys repaired) of its exchanges that repaired keys, oldest first.
        self._repairs: dict[TreeId, deque[tuple[float, int]]] = {}
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ serving peers

    def serve_root(self, _source: str, m: AaeRoot) -> list:
        tree = self._trees.built((m.partition, m.n_val))
        return _unbuilt(m) if tree is None else [True, tree.root]

    def serve_branches(self, _source: str, m: AaeBranches) -> list:
        tree = self._trees.built((m.partition, m.n_val))
        if tree is None:
            return _unbuilt(m)
        count = len(tree.branches)
        wanted = list(range(count)) if m.branches is None else _positions(m.branches, count)
        if wanted is None:
            return [False, f"branches are integers in [0, {count})"]
        return [True, [tree.branches[b] for b in wanted]]

    def serve_segments(self, _source: str, m: AaeSegments) -> list:
        tree = self._trees.built((m.partition, m.n_val))
        if tree is None:
            return _unbuilt(m)
        wanted = _positions(m.segments, tree.shape.segments)
        if wanted is None:
            return [False, f"segments are integers in [0, {tree.shape.segments})"]
        return [True, tree.segment_hashes(wanted)]

    async def serve_keys(self, _source: str, m: AaeKeys) -> list:
        tid = (m.partition, m.n_val)
        tree = self._trees.built(tid)
        if tree is None:
            return _unbuilt(m)
        wanted = _positions(m.segments, tree.shape.segments)
        if wanted is None:
            return [False, f"segments are integers in [0, {tree.shape.segments})"]
        pairs, complete = await self._trees.key_versions(tid, set(wanted), self._max_bytes)
        return [True, [pairs, complete]]

    # ------------------------------------------------------------------ the driver

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _forever(self) -> None:
        while True:
            # The random part is drawn after the fixed part: a node whose tick never comes
            # (a simulation run with exchanges off) draws nothing, so its other choices stay.
            await asyncio.sleep(self._tick * (1 - _JITTER))
            await asyncio.sleep(self._tick * 2 * _JITTER * self._rng.random())
            while await self.exchange_all():
                pass  # an exchange stopped at max_repairs: go on without waiting a tick

    async def exchange_all(self) -> bool:
        """Exchange every tree once; whether any stopped at max_repairs with more to do.

        A wiped node differs from its peers in every key: waiting a tick after each
        max_repairs keys would bring back a vnode of 100k keys in 100 ticks, so the next pass
        starts at once while exchanges keep finding that much to repair. Each repair still
        yields to the request backlog, and trees in sync cost one root message each."""
        more = False
        for tid in sorted(self._trees.slots):
            if self._handoff.stats.active:
                return False  # handing off: the transfer's writes come first
            try:
                result = await self.exchange(tid)
            except Exception:
                log.exception("aae: exchange of tree %s failed", tid)
                continue
            more |= result is not None and result.repaired >= self._max_repairs
        return more

    def peer_for(self, tid: TreeId) -> str | None:
        """Another primary of the tree's preference list that is up, chosen at random."""
        peers = sorted(
            {
                e.node
                for e in primaries(self._membership.ring, tid[0], tid[1])
                if e.node != self.me and self._membership.is_up(e.node)
            }
        )
        return self._rng.choice(peers) if peers else None

    async def exchange(self, tid: TreeId) -> LastExchange | None:
        """Compare tree `tid` with a peer's and repair what differs; None if skipped (tree
        not built, no peer up, or the peer's tree not built)."""
        patience = await self._yield_to_backlog(tid, _PATIENCE_TICKS * self._tick)
        result = await self._compare(tid, patience)
        if result is None:
            self.outcomes[SKIPPED] += 1
            return None
        self.outcomes[result.outcome] += 1
        self.last[tid] = result
        self.repaired += result.repaired
        if result.repaired:
            self._repairs.setdefault(tid, deque()).append((result.when, result.repaired))
        log.debug("aae: tree %s with %s: %s", tid, result.peer, result)
        return result

    async def _yield_to_backlog(self, tid: TreeId, patience: float) -> float:
        """Wait while the request backlog is above pause_backlog, for `patience` seconds at
        most; what is left of it. Client requests come first, but an exchange that waited
        its fill goes on rather than leave the tree unrepaired for as long as load lasts."""
        if patience <= 0 or self._backlog() <= self._pause_backlog:
            return patience
        started = self._clock.monotonic()
        while self._backlog() > self._pause_backlog:
            left = patience - (self._clock.monotonic() - started)
            if left <= 0:
                log.warning(
                    "aae: exchange of tree %s goes on after waiting %.1f s for a backlog of "
                    "%d requests (pause_backlog %d)",
                    tid,
                    patience,
                    self._backlog(),
                    self._pause_backlog,
                )
                return 0.0
            await asyncio.sleep(min(_POLL, left))
        return patience - (self._clock.monotonic() - started)

    async def _compare(self, tid: TreeId, patience: float) -> LastExchange | None:
        tree = self._trees.built(tid)
        peer = self.peer_for(tid)
        if tree is None or peer is None:
            return None
        core = ExchangeCore(tree, self._max_repairs)
        step: Ask | Done = core.start()
        while isinstance(step, Ask):
            theirs = await self._ask(peer, tid, step)
            if theirs is None:
                return None
            try:
                step = await self._feed(core, tid, step, theirs)
            except (ValueError, TypeError) as exc:  # a malformed answer ends the exchange
                log.warning("aae: %s answered %s of tree %s wrongly: %s", peer, step.what, tid, exc)
                return None
        repaired = await self._repair(tid, step.repair, patience)
        return LastExchange(self._clock.time(), peer, step.outcome, repaired)

    def repairs_last_hour(self, tid: TreeId) -> int:
        """Keys tree `tid`'s exchanges repaired in the last hour (by this node's clock)."""
        recent = self._repairs.get(tid)
        if recent is None:
            return 0
        since = self._clock.time() - _HOUR
        while recent and recent[0][0] <= since:
            recent.popleft()
        if not recent:
            del self._repairs[tid]
        return sum(count for _, count in recent)

    def tree_status(self, tid: TreeId) -> dict:
        """What GET /admin/aae adds to a tree's row: its last exchange and recent repairs."""
        last = self.last.get(tid)
        return {
            "last_exchange": None if last is None else asdict(last),
            "repairs_last_hour": self.repairs_last_hour(tid),
        }

    async def _feed(self, core: ExchangeCore, tid: TreeId, step: Ask, theirs: Any) -> Ask | Done:
        if step.what != KEYS:
            return core.feed(theirs)
        pairs, complete = theirs
        ours, ours_complete = await self._trees.key_versions(
            tid, set(step.positions or ()), self._max_bytes
        )
        following = core.feed(
            KeyList({bytes(k): bytes(v) for k, v in pairs}, bool(complete)),
            KeyList({k: v for k, v in ours}, ours_complete),
        )
        if isinstance(following, Ask):
            await asyncio.sleep(min(_CONFIRM_PAUSE, self._tick / 10))
        return following

    async def _ask(self, peer: str, tid: TreeId, step: Ask) -> Any:
        """The peer's answer to `step`, or None (and why, logged) if it gave none."""
        message: Message
        positions = None if step.positions is None else list(step.positions)
        if step.what == ROOT:
            message = AaeRoot(*tid)
        elif step.what == BRANCHES:
            message = AaeBranches(*tid, positions)
        elif step.what == SEGMENTS:
            message = AaeSegments(*tid, positions or [])
        else:
            message = AaeKeys(*tid, positions or [])
        try:
            ok, answer = await self._transport.request(peer, message.to_wire(), _TIMEOUT)
        except (TransportError, ValueError, TypeError) as exc:
            log.info("aae: exchange of tree %s with %s stopped: %s", tid, peer, exc)
            return None
        if not ok:
            log.debug("aae: %s skips the exchange of tree %s: %s", peer, tid, answer)
            return None
        return answer

    async def _repair(self, tid: TreeId, okeys: Sequence[bytes], patience: float) -> int:
        """Read-repair each key through the coordinator's GET of every replica, up to
        _REPAIRS_IN_FLIGHT at once and each after the backlog allows; how many were asked
        for (keys of a type unknown here are left for the next exchange).

        One at a time, a repair rate is one over a GET's round trip (about 500 keys/s on a
        loaded machine); with several in flight it is bound by the replicas' CPU instead."""
        slots = asyncio.Semaphore(_REPAIRS_IN_FLIGHT)
        repaired = 0

        async def repair(bkey: BKey, opts: GetOptions, props: BucketProps) -> None:
            try:
                await self._coordinator.get(bkey, props, opts)
            except Exception:  # one key's failure must not stop the others' repairs
                log.exception("aae: repair of %r failed", bkey)
            finally:
                slots.release()

        async with asyncio.TaskGroup() as group:
            for okey in okeys:
                patience = await self._yield_to_backlog(tid, patience)
                btype, bucket, key = split_object_key(okey)
                props = self._props_of(
                    btype.decode(errors="replace"), bucket.decode(errors="replace")
                )
                if props is None:
                    continue
                opts = GetOptions(r=props.n_val, notfound_ok=True, timeout=_TIMEOUT)
                await slots.acquire()
                group.create_task(repair(BKey(btype, bucket, key), opts, props))
                repaired += 1
        return repaired


def stat_counters(exchanges: Exchanges | None, trees: AaeTrees | None) -> dict[str, int]:
    """Anti-entropy totals since start under /stats' names; zeros on a node without AAE."""
    outcomes = Counter() if exchanges is None else exchanges.outcomes
    return {
        "aae_exchanges_in_sync": outcomes[IN_SYNC],
        "aae_exchanges_repaired": outcomes[REPAIR],
        "aae_exchanges_unconfirmed": outcomes[UNCONFIRMED],
        "aae_exchanges_skipped": outcomes[SKIPPED],
        "aae_keys_repaired": 0 if exchanges is None else exchanges.repaired,
        "aae_tree_rebuilds": 0 if trees is None else trees.rebuilds,
    }


def _unbuilt(m: AaeRoot | AaeBranches | AaeSegments | AaeKeys) -> list:
    return [False, f"no built tree ({m.partition}, {m.n_val}) here"]
