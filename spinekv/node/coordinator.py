"""Coordinators: drive one GET, PUT or DELETE across the key's preference list.

The decisions live in quorum.py; this module only sends requests, feeds the
replies into a core, answers as soon as the core has decided, and afterwards
(for GETs) sends read repairs. Every remote request carries the client's
deadline, so no request waits past its timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from .. import object as riak_object
from ..config import BucketProps
from ..dvv import DVVSet
from ..object import Content
from ..quorum import Failed, Found, GetCore, GetOptions, NotFound, PutCore, PutOptions, Reply
from ..ring import PrefEntry
from ..storage.base import object_key
from ..transport.base import Transport, TransportError
from .coverage import Coverage
from .membership import Membership
from .vnode import Vnodes

log = logging.getLogger("spinekv.coordinator")


@dataclass(frozen=True, slots=True)
class BKey:
    bucket_type: bytes
    bucket: bytes
    key: bytes

    @property
    def okey(self) -> bytes:
        return object_key(self.bucket_type, self.bucket, self.key)


@dataclass(frozen=True, slots=True)
class PutOk:
    obj: DVVSet


PutResult = PutOk | Failed


def _describe(entry: PrefEntry, exc: BaseException) -> str:
    kind = "primary" if entry.primary else "fallback"
    return f"{entry.node} ({kind}): {type(exc).__name__} {exc}".rstrip()


class Coordinator:
    def __init__(
        self,
        me: str,
        membership: Membership,
        vnodes: Vnodes,
        transport: Transport,
        now_us: Any,
        allow_mult_of: Any = None,
    ) -> None:
        self.me = me
        # Handoff carries objects without their bucket props; the type decides.
        self._allow_mult_of = allow_mult_of or (lambda bucket_type, bucket: True)
        self.membership = membership
        self.vnodes = vnodes
        self.transport = transport
        self._now_us = now_us
        self._background: set[asyncio.Task] = set()
        self._handoff_lock = asyncio.Lock()
        self.coverage = Coverage(me, membership, vnodes.backend, transport)

    # ------------------------------------------------------------ helpers

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _preflist(self, bkey: BKey, props: BucketProps) -> list[PrefEntry]:
        ring = self.membership.ring
        partition = ring.partition_of(bkey.bucket_type, bkey.bucket, bkey.key)
        return self.membership.preflist(partition, props.n_val)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # ------------------------------------------------------------ GET

    async def get(self, bkey: BKey, props: BucketProps, opts: GetOptions) -> Reply:
        """Ask every replica, answer once r (and pr) replies agree, then read-repair."""
        prefs = self._preflist(bkey, props)
        core = GetCore(
            n=len(prefs),
            r=opts.r,
            pr=opts.pr,
            notfound_ok=opts.notfound_ok,
            basic_quorum=opts.basic_quorum,
            allow_mult=props.allow_mult,
        )
        for i, entry in enumerate(prefs):
            core.expect(i, entry.primary)
        early = core.outcome()
        if early is not None:
            return self._with_reachable(early, props, prefs)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Reply] = loop.create_future()
        okey = bkey.okey
        remaining = len(prefs)

        def on_reply(i: int, reply: Reply) -> None:
            nonlocal remaining
            core.add(i, reply)
            remaining -= 1
            if not answer.done():
                outcome = core.outcome()
                if outcome is not None:
                    answer.set_result(outcome)
            if remaining == 0:
                self._read_repair(core, prefs, okey, props)

        for i, entry in enumerate(prefs):
            if entry.node == self.me:
                on_reply(i, self._local_get(entry.partition, okey))
            else:
                fut = self.transport.request_nowait(
                    entry.node, ["get", entry.partition, okey], opts.timeout
                )
                fut.add_done_callback(partial(_remote_reply, i, entry, on_reply))
        return await answer

    @staticmethod
    def _with_reachable(early: Reply, props: BucketProps, prefs: list[PrefEntry]) -> Reply:
        """A failure decided before asking anyone, with the replicas that were reachable."""
        if isinstance(early, Failed):
            up = ", ".join(sorted({e.node for e in prefs})) or "none"
            return Failed(f"{early.reason}; n_val={props.n_val}, reachable replicas: {up}")
        return early

    def _local_get(self, partition: int, okey: bytes) -> Reply:
        try:
            obj = self.vnodes.get(partition, okey)
        except Exception as exc:  # a corrupt record must not take the request down
            log.exception("local get failed")
            return Failed(f"{self.me}: {exc}")
        return NotFound() if obj is None else Found(obj)

    def _read_repair(
        self, core: GetCore, prefs: list[PrefEntry], okey: bytes, props: BucketProps
    ) -> None:
        merged = core.merged()
        if merged is None:
            return
        targets = core.repair_targets(merged)
        if not targets:
            return
        encoded = riak_object.encode(merged)
        for i in targets:
            entry = prefs[i]
            log.debug("read repair of %r on %s/%d", okey, entry.node, entry.partition)
            if entry.node == self.me:
                self.vnodes.merge(entry.partition, okey, merged, allow_mult=props.allow_mult)
            else:
                message = ["put", entry.partition, okey, encoded, False, props.allow_mult]
                self._spawn(self._best_effort(entry.node, message))

    async def _best_effort(self, node: str, message: list) -> None:
        try:
            await self.transport.request(node, message, 10.0)
        except TransportError as exc:
            log.info("read repair to %s failed: %s", node, exc)

    # ------------------------------------------------------------ PUT

    async def put(
        self,
        bkey: BKey,
        props: BucketProps,
        context: Mapping[str, int],
        content: Content,
        opts: PutOptions,
        *,
        forwarded: bool = False,
    ) -> PutResult:
        """Apply the write on a coordinating vnode, replicate it, answer after w acks."""
        prefs = self._preflist(bkey, props)
        core = PutCore(
            [(e.node, e.primary) for e in prefs],
            w=opts.w,
            dw=opts.dw,
            pw=opts.pw,
            node_confirms=opts.node_confirms,
        )
        early = core.failure()
        if early is not None:
            return Failed(self._with_reachable(Failed(early), props, prefs).reason)
        local = next((e for e in prefs if e.node == self.me), None)
        if local is None:
            if forwarded:
                return Failed(f"forward: {self.me} holds no replica of this key")
            result, reasons = await self._forward_put(bkey, props, context, content, opts, prefs)
            if result is not None:
                return result
            # Every candidate failed, so they are now marked down and the preference
            # list has changed: it may hold a fallback here. Try once more with it.
            prefs = self._preflist(bkey, props)
            if not any(e.node == self.me for e in prefs):
                return Failed(
                    f"w={opts.w} unsatisfied: no replica could coordinate the write ("
                    + "; ".join(reasons)
                    + ")"
                )
            return await self.put(bkey, props, context, content, opts, forwarded=True)

        sync = opts.dw > 0
        okey = bkey.okey
        try:
            obj = self.vnodes.coordinate(
                local.partition,
                okey,
                context,
                content,
                allow_mult=props.allow_mult,
                last_write_wins=props.last_write_wins,
            )
        except Exception as exc:
            log.exception("coordinating write failed")
            return Failed(f"coordinator {self.me} could not write: {exc}")
        answer: asyncio.Future[PutResult] = asyncio.get_running_loop().create_future()

        def settle() -> None:
            if answer.done():
                return
            if core.succeeded():
                answer.set_result(PutOk(obj))
            elif (reason := core.failure()) is not None:
                answer.set_result(Failed(reason))

        index = {id(entry): i for i, entry in enumerate(prefs)}

        def on_reply(entry: PrefEntry, exc: BaseException | None, durable: bool) -> None:
            if exc is None:
                core.add_ack(index[id(entry)], durable)
            else:
                core.add_failure(index[id(entry)], _describe(entry, exc))
            settle()

        encoded = riak_object.encode(obj)
        for entry in prefs:
            if entry.node == self.me:
                # The coordinating vnode, or another vnode here (a second fallback).
                if entry is not local:
                    self.vnodes.merge(entry.partition, okey, obj, allow_mult=props.allow_mult)
                if sync:
                    self._spawn(self._local_durable(entry, on_reply))
                else:
                    on_reply(entry, None, False)
                continue
            message = ["put", entry.partition, okey, encoded, sync, props.allow_mult]
            fut = self.transport.request_nowait(entry.node, message, opts.timeout)
            fut.add_done_callback(partial(_replica_ack, entry, on_reply))
        return await answer

    async def _local_durable(self, entry: PrefEntry, on_reply: Any) -> None:
        try:
            await self.vnodes.flush()
        except Exception as exc:
            log.exception("fsync failed")
            on_reply(entry, exc, False)
        else:
            on_reply(entry, None, True)

    async def _forward_put(
        self,
        bkey: BKey,
        props: BucketProps,
        context: Mapping[str, int],
        content: Content,
        opts: PutOptions,
        prefs: list[PrefEntry],
    ) -> tuple[PutResult | None, list[str]]:
        """Ask each replica in turn to coordinate; (None, reasons) if none could."""
        message = [
            "coord_put",
            [bkey.bucket_type, bkey.bucket, bkey.key],
            _props_to_wire(props),
            sorted(context.items()),
            riak_object.encode(riak_object.DVVSet((("", 1, (content,)),))),
            [opts.w, opts.dw, opts.pw, opts.node_confirms, opts.timeout],
        ]
        reasons = []
        for entry in prefs:
            try:
                reply = await self.transport.request(entry.node, message, opts.timeout)
            except TransportError as exc:
                reasons.append(_describe(entry, exc))
                continue
            ok, payload = reply
            if ok:
                return PutOk(riak_object.decode(payload)), reasons
            if not str(payload).startswith("forward:"):
                return Failed(payload), reasons
            reasons.append(f"{entry.node}: {payload}")
        return None, reasons

    # ------------------------------------------------------------ DELETE

    async def delete(
        self,
        bkey: BKey,
        props: BucketProps,
        context: Mapping[str, int] | None,
        get_opts: GetOptions,
        put_opts: PutOptions,
    ) -> PutResult | NotFound:
        """Write a tombstone over `context`, or over what a quorum read finds."""
        if context is None:
            found = await self.get(bkey, props, get_opts)
            if isinstance(found, Failed):
                return found
            if isinstance(found, NotFound):
                return NotFound()
            context = riak_object.context(found.obj)
        return await self.put(bkey, props, context, riak_object.tombstone(self._now_us()), put_opts)

    # ------------------------------------------------------------ internode

    def handle(self, source: str, message: list) -> Any:
        """Answer one internode request (the transport's handler).

        Reads answer at once; a request that must wait (a durable write, a
        forwarded PUT) returns an awaitable of its reply.
        """
        op = message[0]
        if op == "get":
            _, partition, okey = message
            return self.vnodes.get_raw(partition, okey)
        if op == "put":
            _, partition, okey, encoded, sync, allow_mult = message
            self.vnodes.merge(partition, okey, riak_object.decode(encoded), allow_mult=allow_mult)
            return self._durable_ack() if sync else False
        if op == "coord_put":
            return self._handle_coord_put(message)
        if op == "handoff":
            _, partition, batch, ring = message
            self.membership.absorb(ring)
            return self._receive_handoff(partition, batch)
        if op == "cover":
            _, vnode, partitions, kind, args = message
            return self.coverage.fold(vnode, partitions, kind, args)
        if op == "ring":
            return self.membership.receive(message[1])
        if op == "ping":
            return "pong"
        raise ValueError(f"unknown internode operation {op!r}")

    async def _receive_handoff(self, partition: int, batch: list) -> bool:
        # One batch at a time, in slices with a yield between: the several nodes that
        # hand off to a returning node at once must not take its whole event loop.
        async with self._handoff_lock:
            for start in range(0, len(batch), 100):
                self.vnodes.merge_batch(partition, batch[start : start + 100], self._allow_mult_of)
                await asyncio.sleep(0)
            return await self._durable_ack()

    async def _durable_ack(self) -> bool:
        await self.vnodes.flush()
        return True

    async def _handle_coord_put(self, message: list) -> list:
        _, (btype, bucket, key), wire_props, context, encoded, quorums = message
        w, dw, pw, node_confirms, timeout = quorums
        content = riak_object.contents(riak_object.decode(encoded))[0]
        result = await self.put(
            BKey(btype, bucket, key),
            _props_from_wire(wire_props),
            dict(context),
            content,
            PutOptions(w=w, dw=dw, pw=pw, node_confirms=node_confirms, timeout=timeout),
            forwarded=True,
        )
        if isinstance(result, PutOk):
            return [True, riak_object.encode(result.obj)]
        return [False, result.reason]


def _remote_reply(i: int, entry: PrefEntry, on_reply: Any, fut: asyncio.Future) -> None:
    """Turn one replica's reply (or failure) to a GET into a quorum Reply."""
    if fut.cancelled():
        on_reply(i, Failed(f"{entry.node}: request cancelled"))
        return
    try:
        raw = fut.result()
        reply: Reply = NotFound() if raw is None else Found(riak_object.decode(raw))
    except (TransportError, riak_object.CodecError) as exc:
        reply = Failed(_describe(entry, exc))
    on_reply(i, reply)


def _replica_ack(entry: PrefEntry, on_reply: Any, fut: asyncio.Future) -> None:
    """Turn one replica's answer to a replicated PUT into an ack or a failure."""
    if fut.cancelled():
        on_reply(entry, TransportError("request cancelled"), False)
    elif (exc := fut.exception()) is not None:
        on_reply(entry, exc, False)
    else:
        on_reply(entry, None, bool(fut.result()))


def _props_to_wire(props: BucketProps) -> list:
    return [props.n_val, props.allow_mult, props.last_write_wins]


def _props_from_wire(wire: list) -> BucketProps:
    n_val, allow_mult, lww = wire
    return BucketProps(n_val=n_val, allow_mult=allow_mult, last_write_wins=lww)
