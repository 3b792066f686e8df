"""A whole spinekv cluster in one process: real node code, simulated network, disk and time."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spinekv import object as riak_object
from spinekv.config import ClusterConfig, parse_config
from spinekv.node.coordinator import BKey, Coordinator, PutOk
from spinekv.object import Content
from spinekv.props import BucketProps
from spinekv.quorum import Failed, Found, GetOptions, NotFound, PutOptions
from spinekv.server import Node
from spinekv.transport.sim import LinkFaults, SimNetwork, SimTransport

from .storage import DurableStore, SimBackend
from .vloop import OWNER, VirtualLoop

EPOCH = 1_800_000_000.0  # the simulated wall clock starts here
# The cluster secret every simulated node shares (there is no secret file to read).
SIM_SECRET = b"simulated cluster secret, not for real use"


class SimClock:
    """The node's clock: the loop's virtual time, plus a fixed wall-clock offset."""

    def __init__(self, loop: VirtualLoop, skew: float = 0.0) -> None:
        self._loop = loop
        self._skew = skew

    def time(self) -> float:
        return EPOCH + self._skew + self._loop.time()

    def monotonic(self) -> float:
        return self._loop.time()


# Each tree's anti-entropy exchange tick in virtual time: a 20 s run sees exchanges while
# its faults last, and a quiet period of a few ticks is short. Much shorter and exchange
# traffic, not the workload, would take most of a run's wall time.
EXCHANGE_TICK_MS = 10_000
# A tick longer than any run: the exchanges never come (for stories that must see a loss).
NO_EXCHANGES_MS = 30 * 86_400_000


def sim_config(nodes: int, ring_size: int, n_val: int, *, exchanges: bool = True) -> ClusterConfig:
    data = {
        "cluster": {"name": "sim", "ring_size": ring_size, "n_val": n_val},
        "bucket_defaults": {"r": "quorum", "w": "quorum"},
        "bucket_types": {"sets": {}, "records": {}},  # allow_mult = true, as every created type
        "aae": {"tick_ms": EXCHANGE_TICK_MS if exchanges else NO_EXCHANGES_MS},
        "node": [
            {"name": f"n{i + 1}", "http_port": 10_000 + i, "peer_port": 20_000 + i}
            for i in range(nodes)
        ],
    }
    return parse_config(data, Path("/nonexistent/sim/cluster.toml"))


def _bkey(bucket_type: str, bucket: str, key: str) -> BKey:
    return BKey(bucket_type.encode(), bucket.encode(), key.encode())


@dataclass
class Outcome:
    """What a client saw: ok, fail (certainly not applied) or info (unknown), and why."""

    type: str
    value: Any = None
    context: dict[str, int] | None = None
    error: str | None = None


class SimCluster:
    """Five (by default) nodes on one VirtualLoop; every random choice comes from `seed`.

    `exchanges` False keeps anti-entropy exchanges off, for a story that must see a loss
    they would repair.
    """

    def __init__(
        self,
        seed: int,
        *,
        nodes: int = 5,
        ring_size: int = 16,
        n_val: int = 3,
        faults: LinkFaults | None = None,
        request_timeout: float = 2.0,
        exchanges: bool = True,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.loop = VirtualLoop()
        self.config = sim_config(nodes, ring_size, n_val, exchanges=exchanges)
        self.names = self.config.node_names()
        self.network = SimNetwork(random.Random(self.rng.getrandbits(64)), faults)
        self.request_timeout = request_timeout
        self.stores = {name: DurableStore() for name in self.names}
        self.nodes: dict[str, Node] = {}
        self.contexts: dict[str, contextvars.Context] = {}
        self.incarnation = dict.fromkeys(self.names, 0)
        self.log: list[tuple[float, str]] = []  # (virtual time, fault or event)
        logging.getLogger("spinekv").setLevel(logging.CRITICAL)
        asyncio.set_event_loop(self.loop)
        for name in self.names:
            self._start(name)

    # -------------------------------------------------------------- life cycle

    @property
    def now(self) -> float:
        return self.loop.time()

    @property
    def up(self) -> list[str]:
        return [n for n in self.names if n in self.nodes]

    def _start(self, name: str) -> None:
        self.incarnation[name] += 1
        owner = (name, self.incarnation[name])
        context = contextvars.copy_context()
        context.run(OWNER.set, owner)
        transport = SimTransport(name, self.network, context=context)
        node = Node(
            self.config,
            name,
            backend=SimBackend(self.stores[name]),
            transport=transport,
            clock=SimClock(self.loop),
            rng=random.Random(self.rng.getrandbits(64)),
            secret=SIM_SECRET,
        )
        self.nodes[name] = node
        self.contexts[name] = context
        starting = self.loop.run_in(context, lambda: node.start(serve_http=False))
        if not self.loop.is_running():
            self.run_until(starting)

    def crash(self, name: str) -> None:
        """The process dies and the machine loses what was not synced to disk."""
        node = self.nodes.pop(name)
        node.transport.crash()  # type: ignore[attr-defined]
        node.backend.close()
        self.loop.kill((name, self.incarnation[name]))
        self.stores[name].rollback()
        self.log.append((self.now, f"crash {name}"))

    def restart(self, name: str) -> None:
        self._start(name)
        self.log.append((self.now, f"restart {name}"))

    def partition(self, *groups: list[str]) -> None:
        self.network.partition(*groups)
        self.log.append((self.now, "partition " + " | ".join(",".join(g) for g in groups)))

    def cut(self, a: str, b: str, *, both_ways: bool = True) -> None:
        self.network.cut(a, b, both_ways=both_ways)
        self.log.append((self.now, f"cut {a}{'<' if both_ways else ''}->{b}"))

    def heal(self) -> None:
        self.network.heal()
        self.log.append((self.now, "heal"))

    def heal_all(self) -> None:
        """Heal the network and restart every crashed node."""
        self.heal()
        for name in self.names:
            if name not in self.nodes:
                self.restart(name)

    def close(self) -> None:
        for name in list(self.nodes):
            self.crash(name)
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()
        asyncio.set_event_loop(None)

    # -------------------------------------------------------------- time

    def run(self, seconds: float) -> None:
        self.loop.run_for(seconds)

    def run_until(self, awaitable: Coroutine[Any, Any, Any] | asyncio.Future[Any]) -> Any:
        return self.loop.run_until_complete(awaitable)

    def settled(self) -> bool:
        """Every node is up, sees every other up, agrees on the ring, and has no handoff left."""
        if len(self.nodes) != len(self.names):
            return False
        digests = {node.membership.state.digest for node in self.nodes.values()}
        if len(digests) != 1:
            return False
        for node in self.nodes.values():
            if not all(node.membership.is_up(n) for n in self.names):
                return False
            if node.handoff.pending():
                return False
        return True

    def settle(self, limit: float = 120.0) -> float:
        """Run until settled() holds at two checks a second apart; returns the virtual time.

        Twice, because a failure a node has not noticed yet (a probe still in flight)
        looks settled for a moment. AssertionError once `limit` virtual seconds pass.
        """
        start = self.now
        streak = 0
        while streak < 2:
            if self.now - start > limit:
                raise AssertionError(
                    f"seed {self.seed}: not settled after {limit:g} virtual seconds: "
                    + self.describe()
                )
            self.run(1.0)
            streak = streak + 1 if self.settled() else 0
        return self.now - start

    def describe(self) -> str:
        parts = []
        for name in self.names:
            node = self.nodes.get(name)
            if node is None:
                parts.append(f"{name}: down")
                continue
            down = [n for n in self.names if not node.membership.is_up(n)]
            parts.append(
                f"{name}: sees down {down}, ring {node.membership.state.digest[:8]},"
                f" pending {node.handoff.pending()[:3]}"
            )
        return "; ".join(parts)

    # -------------------------------------------------------------- client operations

    def props(self, bucket_type: str) -> BucketProps:
        props = self.config.bucket_type(bucket_type)
        assert props is not None, bucket_type
        return props

    async def _on(self, node: str, call: Callable[[Coordinator], Any]) -> tuple[str, Any]:
        """Run `call(coordinator)` as `node` would serve a request; never raises."""
        server = self.nodes.get(node)
        if server is None:
            return "fail", f"{node} is down: connection refused"
        task = self.loop.run_in(self.contexts[node], lambda: call(server.coordinator))
        timeout = self.request_timeout * 2
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            return "timeout", f"no answer from {node} within {timeout:g}s"
        if task.cancelled():
            return "crashed", f"{node} crashed while serving the request"
        exc = task.exception()
        if exc is not None:
            return "error", f"{type(exc).__name__}: {exc}"
        return "ok", task.result()

    async def get(
        self, node: str, bucket_type: str, bucket: str, key: str, *, r: int = 2, pr: int = 0
    ) -> Outcome:
        """A GET: ok with (values, context), fail if it certainly read nothing."""
        props, bkey = self.props(bucket_type), _bkey(bucket_type, bucket, key)
        opts = GetOptions(r=r, pr=pr, timeout=self.request_timeout)
        status, result = await self._on(node, lambda c: c.get(bkey, props, opts))
        if status != "ok":
            return Outcome("fail", error=result)  # a read changes nothing either way
        if isinstance(result, Failed):
            return Outcome("fail", error=result.reason)
        if isinstance(result, NotFound):
            return Outcome("ok", [], {})
        assert isinstance(result, Found)
        values = [c.value for c in riak_object.live_contents(result.obj)]
        return Outcome("ok", values, dict(riak_object.context(result.obj)))

    async def put(
        self,
        node: str,
        bucket_type: str,
        bucket: str,
        key: str,
        value: bytes,
        context: dict[str, int],
        *,
        w: int = 2,
        dw: int = 2,
    ) -> Outcome:
        """A PUT: ok once acknowledged; any failure is info, since a replica may hold it."""
        props, bkey = self.props(bucket_type), _bkey(bucket_type, bucket, key)
        opts = PutOptions(w=w, dw=dw, timeout=self.request_timeout)
        content = Content(value=value, last_modified_us=int(self.now * 1e6))
        status, result = await self._on(node, lambda c: c.put(bkey, props, context, content, opts))
        if status == "fail":
            return Outcome("fail", error=result)
        if status != "ok":
            return Outcome("info", error=result)
        if isinstance(result, Failed):
            return Outcome("info", error=result.reason)
        assert isinstance(result, PutOk)
        return Outcome("ok", value, dict(riak_object.context(result.obj)))

    async def delete(
        self, node: str, bucket_type: str, bucket: str, key: str, context: dict[str, int]
    ) -> Outcome:
        """A DELETE with the context of a read: a tombstone superseding what that read saw."""
        props, bkey = self.props(bucket_type), _bkey(bucket_type, bucket, key)
        put_opts = PutOptions(w=2, dw=2, timeout=self.request_timeout)
        status, result = await self._on(node, lambda c: c.delete(bkey, props, context, put_opts))
        if status == "fail":
            return Outcome("fail", error=result)
        if status != "ok" or isinstance(result, Failed):
            return Outcome("info", error=result if status != "ok" else result.reason)
        return Outcome("ok")
