"""A simulated network for the deterministic simulation: seeded delays, drops, duplicates, cuts.

Every message is encoded with msgpack on send and decoded on arrival, as over TCP, so
nodes share no objects and see the same wire types. Each delivery is a timer on the
event loop, so under a virtual-time loop the whole network is a function of the RNG.
Messages between two nodes may be reordered (TCP would not), which the node code
must tolerate anyway once a connection drops and is re-dialled.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from .base import Handler, RemoteError, RequestTimeout, Unreachable


@dataclass
class LinkFaults:
    """How the network treats each message: delay range in seconds, drop and duplicate odds."""

    delay: tuple[float, float] = (0.0005, 0.005)
    drop: float = 0.0
    duplicate: float = 0.0


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


class SimNetwork:
    """Every simulated transport, the links cut between them, and the fault odds."""

    def __init__(self, rng: random.Random, faults: LinkFaults | None = None) -> None:
        self.rng = rng
        self.faults = faults or LinkFaults()
        self._nodes: dict[str, SimTransport] = {}
        self._cut: set[tuple[str, str]] = set()  # (from, to): messages that way vanish
        self.sent = 0

    # -------------------------------------------------------------- topology

    def cut(self, a: str, b: str, *, both_ways: bool = True) -> None:
        self._cut.add((a, b))
        if both_ways:
            self._cut.add((b, a))

    def partition(self, *groups: set[str] | frozenset[str] | list[str]) -> None:
        """Cut every link between nodes of different groups (both ways)."""
        for i, left in enumerate(groups):
            for right in groups[i + 1 :]:
                for a in sorted(left):
                    for b in sorted(right):
                        self.cut(a, b)

    def heal(self) -> None:
        self._cut.clear()

    def attach(self, transport: SimTransport) -> None:
        self._nodes[transport.name] = transport

    def detach(self, transport: SimTransport) -> None:
        if self._nodes.get(transport.name) is transport:
            del self._nodes[transport.name]
        # The process is gone: its peers' connections to it reset, as TCP's would.
        for other in self._nodes.values():
            other._peer_reset(transport.name)

    def listener(self, name: str) -> SimTransport | None:
        return self._nodes.get(name)

    # -------------------------------------------------------------- delivery

    def send(
        self, src: str, dst: str, data: bytes, arrive: Callable[[SimTransport, bytes], None]
    ) -> None:
        """Carry `data` from src to dst and call `arrive(dst's transport, data)` there.

        The message is lost if the link is cut, by the drop odds, or if nothing listens
        at dst when it arrives. It runs in dst's context, so what it starts is dst's.
        """
        self.sent += 1
        faults = self.faults
        rng = self.rng
        if (src, dst) in self._cut:
            return
        if faults.drop and rng.random() < faults.drop:
            return
        copies = 1
        if faults.duplicate and rng.random() < faults.duplicate:
            copies = 2
        loop = asyncio.get_running_loop()
        for _ in range(copies):
            loop.call_later(rng.uniform(*faults.delay), self._arrive, dst, arrive, data)

    def _arrive(self, dst: str, arrive: Callable[[SimTransport, bytes], None], data: bytes) -> None:
        target = self._nodes.get(dst)
        if target is not None and not target.closed:
            target.context.run(arrive, target, data)


class SimTransport:
    """One node's end of the simulated network; the Transport interface."""

    def __init__(
        self,
        name: str,
        network: SimNetwork,
        *,
        context: contextvars.Context | None = None,
        backoff: float = 0.5,
    ) -> None:
        self.name = name
        self.network = network
        # Deliveries to this node run in its context, so tasks they start belong to it.
        self.context = context or contextvars.copy_context()
        self.backoff = backoff
        self._handler: Handler | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._broken_until: dict[str, float] = {}
        self._serving: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.hello: dict[str, Any] = {"name": name}
        self._admit: Callable[[dict[str, Any]], str | None] | None = None
        self._on_hello: Callable[[dict[str, Any]], None] | None = None
        self._admitted: set[str] = set()

    async def start(
        self,
        handler: Handler,
        *,
        hello: Mapping[str, Any] | None = None,
        admit: Callable[[dict[str, Any]], str | None] | None = None,
        on_hello: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """As TcpTransport.start; a peer's hello is judged on its first request."""
        self._handler = handler
        self.hello = {**(hello or {}), "name": self.name}
        self._admit = admit
        self._on_hello = on_hello
        self._loop = asyncio.get_running_loop()
        self.network.attach(self)

    async def request(self, peer: str, message: Any, timeout: float) -> Any:
        return await self.request_nowait(peer, message, timeout)

    def request_nowait(self, peer: str, message: Any, timeout: float) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if self.closed:
            fut.set_exception(Unreachable("transport is closed"))
            return fut
        if peer == self.name:
            fut.set_exception(Unreachable(f"{peer!r} is this node; no loopback"))
            return fut
        rid = next(self._ids)
        self._pending[rid] = (peer, fut)
        timer = loop.call_later(timeout, self._expire, rid, peer, timeout)
        fut.add_done_callback(lambda _: (timer.cancel(), self._pending.pop(rid, None)))
        if self.network.listener(peer) is None:
            # Nothing listens there: the connection is refused after one round trip.
            loop.call_later(
                self.network.faults.delay[0],
                self._fail,
                rid,
                Unreachable(f"cannot connect to {peer}: connection refused"),
            )
            return fut
        source = self

        def arrive(target: SimTransport, data: bytes) -> None:
            target._on_request(source, data)

        self.network.send(self.name, peer, _pack([rid, message]), arrive)
        return fut

    def _expire(self, rid: int, peer: str, timeout: float) -> None:
        self._fail(rid, RequestTimeout(f"no reply from {peer} within {timeout:g}s"))

    def _fail(self, rid: int, exc: Exception) -> None:
        entry = self._pending.get(rid)
        if entry is None:
            return
        peer, fut = entry
        if isinstance(exc, Unreachable) and self._loop is not None:
            self._broken_until[peer] = self._loop.time() + self.backoff
        if not fut.done():
            fut.set_exception(exc)

    def _peer_reset(self, peer: str) -> None:
        for rid, (target, _) in list(self._pending.items()):
            if target == peer:
                self._fail(rid, Unreachable(f"connection to {peer} reset: peer crashed"))

    # -------------------------------------------------------------- serving

    def _on_request(self, source: SimTransport, data: bytes) -> None:
        rid, message = _unpack(data)
        assert self._handler is not None
        if source.name not in self._admitted:
            refusal = None if self._admit is None else self._admit(source.hello)
            if refusal is not None:
                self._reply(source, rid, False, f"refused: {refusal}")
                return
            self._admitted.add(source.name)
            if self._on_hello is not None:
                self._on_hello(source.hello)
        try:
            result = self._handler(source.name, message)
        except Exception as exc:
            self._reply(source, rid, False, f"{type(exc).__name__}: {exc}")
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._finish(source, rid, result))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)
        else:
            self._reply(source, rid, True, result)

    async def _finish(self, source: SimTransport, rid: int, pending: Any) -> None:
        try:
            result = await pending
        except Exception as exc:
            self._reply(source, rid, False, f"{type(exc).__name__}: {exc}")
        else:
            self._reply(source, rid, True, result)

    def _reply(self, source: SimTransport, rid: int, ok: bool, body: Any) -> None:
        if self.closed:
            return

        def arrive(target: SimTransport, data: bytes) -> None:
            if target is source:  # a restarted requester never sent this
                source._on_reply(data)

        self.network.send(self.name, source.name, _pack([rid, ok, body]), arrive)

    def _on_reply(self, data: bytes) -> None:
        rid, ok, body = _unpack(data)
        entry = self._pending.get(rid)
        if entry is None:
            return  # timed out already, or a duplicate
        peer, fut = entry
        self._broken_until.pop(peer, None)
        if fut.done():
            return
        if ok:
            fut.set_result(body)
        else:
            fut.set_exception(RemoteError(body))

    # -------------------------------------------------------------- state

    def is_reachable(self, peer: str) -> bool:
        until = self._broken_until.get(peer)
        return until is None or asyncio.get_running_loop().time() >= until

    async def close(self) -> None:
        """A clean stop: our pending requests fail, peers' requests to us reset."""
        pending = list(self._pending.values())
        self.crash()
        for _, fut in pending:
            if not fut.done():
                fut.set_exception(Unreachable("transport is closed"))

    def crash(self) -> None:
        """Vanish at once. Our pending requests never complete: the code waiting on them
        died too, and must not run again. Peers' requests to us reset."""
        if self.closed:
            return
        self.closed = True
        self._pending.clear()
        self.network.detach(self)
