"""The sink side of real-time replication: pullers that drain a source cluster's queues.

For each [[replication.sink]] table every node of the sink runs one puller per source
node. A puller fetches a batch from that node's queue over the source's HTTP API (as
the sink's `repl` user, taking the queue's lease as consumer "<cluster>/<node>"),
merges each object into this cluster as it is (Coordinator.apply_replicated: no new
event, never queued again, so two clusters can replicate both ways), and acknowledges
the batch's last sequence number once all of it is applied. An empty batch, a lease
held by another puller, or an error backs off; while this node is busy (its request
backlog above [aae] pause_backlog) it waits before fetching.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import msgpack

from .. import object as riak_object
from ..clock import Clock
from ..config import ClusterConfig, ConfigError, ReplSink
from ..props import BucketProps
from ..quorum import Failed, put_options
from .coordinator import BKey, Coordinator

log = logging.getLogger("spinekv.repl")

BATCH = 100  # entries asked for per fetch
# Back-off after an empty batch, a held lease or an error: doubling from the first to the last.
BACKOFF_FIRST_S = 0.2
BACKOFF_MOST_S = 2.0
REQUEST_TIMEOUT_S = 30.0

PropsOf = Callable[[str, str], BucketProps | None]


class PullError(Exception):
    """A fetch, apply or ack that did not go through; the batch is fetched again later."""


@dataclass
class SinkCounters:
    """One sink's totals since start, for /stats."""

    fetched: int = 0
    applied: int = 0
    skipped: int = 0  # keys of a bucket type this cluster does not have
    errors: int = 0
    lag_ms: int = 0  # now minus the newest applied entry's enqueue time, at the last batch


def read_token(sink: ReplSink) -> str:
    """The bearer token the sink's table points at; ConfigError when it cannot be had."""
    where = f"replication.sink {sink.name!r}"
    if sink.token_file is None:
        raise ConfigError(f"{where}: token_file is required (the source user's bearer token)")
    try:
        token = sink.token_file.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot read token_file {sink.token_file}: {exc.strerror}"
        ) from None
    if not token:
        raise ConfigError(f"{where}: token_file {sink.token_file} is empty")
    return token


class Puller:
    """One sink's puller from one source node."""

    def __init__(
        self,
        sink: ReplSink,
        peer: tuple[str, int],
        consumer: str,
        token: str,
        pullers: SinkPullers,
    ) -> None:
        self.sink = sink
        self.consumer = consumer
        host, port = peer
        host = f"[{host}]" if ":" in host else host
        self.base = f"http://{host}:{port}/repl/queues/{sink.queue}"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._pullers = pullers
        self.counters = pullers.counters[sink.name]
        self._state = "ok"  # what was last logged about this peer

    async def run(self, session: aiohttp.ClientSession) -> None:
        delay = BACKOFF_FIRST_S
        while True:
            await self._pullers.wait_for_quiet()
            try:
                busy = await self._pull(session)
                self._say("ok")
            except PullError as exc:
                self.counters.errors += 1
                self._say(str(exc))
                busy = False
            except Exception as exc:  # transport, or an answer that does not decode: go on
                self.counters.errors += 1
                self._say(f"{type(exc).__name__}: {exc}")
                busy = False
            if busy:
                delay = BACKOFF_FIRST_S
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MOST_S)

    def _say(self, state: str) -> None:
        """Log a change of this peer's state once, not every retry."""
        if state == self._state:
            return
        if state == "ok":
            log.info("repl sink %s: %s answers again", self.sink.name, self.base)
        else:
            log.warning("repl sink %s: %s: %s", self.sink.name, self.base, state)
        self._state = state

    async def _pull(self, session: aiohttp.ClientSession) -> bool:
        """One batch fetched, applied and acknowledged; False when there was nothing to do."""
        params = {"max": str(BATCH), "consumer": self.consumer}
        async with session.post(f"{self.base}/fetch", params=params, headers=self._headers) as r:
            if r.status == 409:  # another puller drains this node's queue
                return False
            if r.status != 200:
                raise PullError(f"fetch answered {r.status}: {(await r.text())[:200]}")
            answer = msgpack.unpackb(await r.read(), raw=True)
        entries = answer[b"entries"]
        if not entries:
            return False
        self.counters.fetched += len(entries)
        newest = await self._pullers.apply(self.sink, entries)
        params = {"upto": str(entries[-1][0]), "consumer": self.consumer}
        async with session.post(f"{self.base}/ack", params=params, headers=self._headers) as r:
            if r.status != 200:
                raise PullError(f"ack answered {r.status}: {(await r.text())[:200]}")
        if newest is not None:
            self.counters.lag_ms = max(0, int((self._pullers.clock.time() - newest) * 1000))
        return True


class SinkPullers:
    """Every puller of this node's [[replication.sink]] tables; start() and stop() them."""

    def __init__(
        self,
        config: ClusterConfig,
        me: str,
        coordinator: Coordinator,
        props_of: PropsOf,
        *,
        clock: Clock,
        backlog: Callable[[], int],
        pause_backlog: int,
    ) -> None:
        self.config = config
        self.me = me
        self.clock = clock
        self._coordinator = coordinator
        self._props_of = props_of
        self._backlog = backlog
        self._pause_backlog = pause_backlog
        self.counters = {sink.name: SinkCounters() for sink in config.replication.sinks}
        self._gates = {
            sink.name: asyncio.Semaphore(sink.workers) for sink in config.replication.sinks
        }
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        """Start pulling; ConfigError (before anything starts) if a token file is missing."""
        sinks = self.config.replication.sinks
        if not sinks:
            return
        tokens = {sink.name: read_token(sink) for sink in sinks}
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        self._session = aiohttp.ClientSession(timeout=timeout)
        consumer = f"{self.config.name}/{self.me}"
        for sink in sinks:
            for peer in sink.peers:
                puller = Puller(sink, peer, consumer, tokens[sink.name], self)
                self._tasks.append(asyncio.ensure_future(puller.run(self._session)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def wait_for_quiet(self) -> None:
        """Backpressure: while this node is busy with its own requests, fetch nothing."""
        while self._backlog() > self._pause_backlog:
            await asyncio.sleep(BACKOFF_FIRST_S)

    async def apply(self, sink: ReplSink, entries: list) -> float | None:
        """Merge a batch's objects here, `workers` at once; the newest applied enqueue time.

        PullError if any could not be written: nothing is acknowledged, and the batch comes
        again (merging is idempotent, so the ones already written do no harm).
        """
        gate = self._gates[sink.name]
        counters = self.counters[sink.name]
        timeout = self.config.request_timeout_ms / 1000

        async def one(entry: list) -> float | None:
            _, btype, bucket, key, raw, queued_at = entry
            if raw is None:  # gone on the source: nothing to apply
                return None
            type_name = btype.decode(errors="replace")
            props = self._props_of(type_name, bucket.decode(errors="replace"))
            if props is None:
                # Acknowledged all the same: one unknown type must not hold up the queue.
                counters.skipped += 1
                log.warning("repl sink %s: skipped a key of unknown type %r", sink.name, type_name)
                return None
            obj = riak_object.decode(raw)
            async with gate:
                result = await self._coordinator.apply_replicated(
                    BKey(btype, bucket, key), props, obj, put_options(props, {}, timeout)
                )
            if isinstance(result, Failed):
                raise PullError(f"applying a key failed: {result.reason}")
            counters.applied += 1
            return queued_at

        done = await asyncio.gather(*(one(entry) for entry in entries))
        applied = [when for when in done if when is not None]
        return max(applied) if applied else None

    def stat_counters(self) -> dict[str, int]:
        stats: dict[str, int] = {}
        for name, c in self.counters.items():
            for field_name in ("applied", "fetched", "skipped", "errors", "lag_ms"):
                stats[f"repl_sink_{name}_{field_name}"] = getattr(c, field_name)
        return stats
