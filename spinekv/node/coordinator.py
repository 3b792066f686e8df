"""Coordinators: drive one GET, PUT or DELETE across the key's preference list.

The decisions live in quorum.py (and reaping.py for tombstone reaps); this module
only sends requests, feeds the replies into a core, answers as soon as the core has
decided, and afterwards (for GETs) sends read repairs. Every remote request carries
the client's deadline, so no request waits past its timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from .. import object as riak_object
from .. import reaping
from ..dvv import DVVSet
from ..object import Content
from ..props import IMMEDIATE, KEEP, BucketProps
from ..quorum import (
    CoordinateHere,
    Failed,
    Found,
    GetCore,
    GetOptions,
    NotFound,
    PutCore,
    PutOptions,
    Reply,
    route_after_forwards_failed,
    route_put,
)
from ..reaping import ReapOutcome
from ..ring import PrefEntry, primaries
from ..storage.keys import object_key
from ..transport.base import Transport, TransportError
from .coverage import Coverage
from .membership import Membership
from .messages import CoordinatePut, Get, Put, Reap
from .vnode import VnodeContract

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


# Asked before a tombstone is reaped, with (key, props, the tombstone's timestamp, timeout):
# why replication holds the reap back (node/reapgate.py), or None.
GateCheck = Callable[[BKey, BucketProps, int, float], Awaitable[ReapOutcome | None]]


def _describe(entry: PrefEntry, exc: BaseException) -> str:
    kind = "primary" if entry.primary else "fallback"
    return f"{entry.node} ({kind}): {type(exc).__name__} {exc}".rstrip()


class Coordinator:
    def __init__(
        self,
        me: str,
        membership: Membership,
        vnodes: VnodeContract,
        transport: Transport,
        now_us: Callable[[], int],
        coverage: Coverage,
    ) -> None:
        self.me = me
        self.membership = membership
        self.vnodes = vnodes
        self.transport = transport
        self._now_us = now_us
        self._background: set[asyncio.Task] = set()
        self._reaps_due: set[bytes] = set()  # object keys with a reap scheduled, once each
        # Coverage queries (2i, listing) are planned and run there; kept here so the
        # request handlers that read and write through a coordinator can list too.
        self.coverage = coverage
        # Called with (key, stored object) once per acknowledged client write, on the node
        # the client asked (replication queues hang here).
        self.listeners: list[Callable[[BKey, DVVSet], None]] = []
        # Object keys of client writes not yet heard by the listeners: their changes are
        # not queued yet, so a reap must wait for them (node/reapgate.py).
        self._writing: Counter[bytes] = Counter()
        self.reap_gate: GateCheck | None = None

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
                replies = [core.replies[i] for i in range(len(prefs))]
                if reaping.same_tombstone_everywhere(replies, [e.primary for e in prefs]):
                    self._reap_later(bkey, props, opts.timeout)

        for i, entry in enumerate(prefs):
            if entry.node == self.me:
                on_reply(i, self._local_get(entry.partition, okey))
            else:
                fut = self.transport.request_nowait(
                    entry.node, Get(entry.partition, okey).to_wire(), opts.timeout
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
        except Exception as exc:  # a failing disk must not take the request down
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
                message = Put(entry.partition, okey, encoded, False, props.allow_mult)
                self._spawn(self._best_effort(entry.node, message.to_wire()))

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
        """Apply the write on a coordinating vnode, replicate it, answer after w acks.

        Once acknowledged, the listeners hear of it here, on the node the client asked.
        A forwarded write is heard of where it came from, so once in the cluster. (A
        write applied from another cluster goes through apply_replicated, heard by none.)
        """
        if forwarded:
            return await self._put(bkey, props, context, content, opts, forwarded=True)
        okey = bkey.okey
        self._writing[okey] += 1
        try:
            result = await self._put(bkey, props, context, content, opts, forwarded=False)
            if isinstance(result, PutOk):
                for listener in self.listeners:
                    try:
                        listener(bkey, result.obj)
                    except Exception:  # the write stands; full-sync catches what a queue missed
                        log.exception("write listener failed for %r", bkey)
        finally:
            self._writing[okey] -= 1
            if not self._writing[okey]:
                del self._writing[okey]
        return result

    def writing(self, okey: bytes) -> bool:
        """Whether a client write of the key is under way here, not yet heard by the listeners."""
        return okey in self._writing

    async def _put(
        self,
        bkey: BKey,
        props: BucketProps,
        context: Mapping[str, int],
        content: Content,
        opts: PutOptions,
        *,
        forwarded: bool,
    ) -> PutResult:
        prefs = self._preflist(bkey, props)
        core = self._put_core(prefs, props, opts)
        if isinstance(core, Failed):
            return core
        route = route_put(prefs, self.me, forwarded=forwarded)
        if isinstance(route, Failed):
            return route
        if not isinstance(route, CoordinateHere):
            result, reasons = await self._forward_put(
                bkey, props, context, content, opts, route.replicas
            )
            if result is not None:
                return result
            route = route_after_forwards_failed(
                self._preflist(bkey, props), self.me, opts.w, reasons
            )
            if isinstance(route, Failed):
                return route
            return await self._put(bkey, props, context, content, opts, forwarded=True)

        okey = bkey.okey
        try:
            obj = self.vnodes.coordinate(
                route.partition,
                okey,
                context,
                content,
                allow_mult=props.allow_mult,
                last_write_wins=props.last_write_wins,
            )
        except Exception as exc:
            log.exception("coordinating write failed")
            return Failed(f"coordinator {self.me} could not write: {exc}")
        return await self._send_to_replicas(prefs, core, okey, obj, props, opts, route.partition)

    async def _send_to_replicas(
        self,
        prefs: list[PrefEntry],
        core: PutCore,
        okey: bytes,
        obj: DVVSet,
        props: BucketProps,
        opts: PutOptions,
        written: int | None,
    ) -> PutResult:
        """Merge `obj` into every replica but the local vnode `written` (which holds it
        already), and answer PutOk(obj) once `core` is satisfied, or why it cannot be."""
        sync = opts.dw > 0
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
                # The coordinating vnode, or another vnode here (a fallback, a replicated write).
                if entry.partition != written:
                    try:
                        self.vnodes.merge(entry.partition, okey, obj, allow_mult=props.allow_mult)
                    except Exception as exc:  # a failing disk fails this replica, not the node
                        log.exception("local merge failed")
                        on_reply(entry, exc, False)
                        continue
                if sync:
                    self._spawn(self._local_durable(entry, on_reply))
                else:
                    on_reply(entry, None, False)
                continue
            message = Put(entry.partition, okey, encoded, sync, props.allow_mult).to_wire()
            fut = self.transport.request_nowait(entry.node, message, opts.timeout)
            fut.add_done_callback(partial(_replica_ack, entry, on_reply))
        return await answer

    def _put_core(
        self, prefs: list[PrefEntry], props: BucketProps, opts: PutOptions
    ) -> PutCore | Failed:
        """The acknowledgement count for a write to `prefs`, or why it cannot succeed."""
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
        return core

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
        replicas: Sequence[PrefEntry],
    ) -> tuple[PutResult | None, list[str]]:
        """Ask each replica in turn to coordinate; (None, reasons) if none could."""
        message = CoordinatePut(
            [bkey.bucket_type, bkey.bucket, bkey.key],
            _props_to_wire(props),
            sorted(context.items()),
            riak_object.encode(riak_object.DVVSet((("", 1, (content,)),))),
            [opts.w, opts.dw, opts.pw, opts.node_confirms, opts.timeout],
        ).to_wire()
        reasons = []
        for entry in replicas:
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
        self, bkey: BKey, props: BucketProps, context: Mapping[str, int], put_opts: PutOptions
    ) -> PutResult:
        """Write a tombstone over `context` (what the caller read before deleting, as Riak),
        then reap it as the bucket's delete_mode says."""
        tombstone = riak_object.tombstone(self._now_us())
        result = await self.put(bkey, props, context, tombstone, put_opts)
        if isinstance(result, PutOk):
            self._reap_later(bkey, props, put_opts.timeout)
        return result

    # ------------------------------------------------------------ replicated writes

    async def apply_replicated(
        self, bkey: BKey, props: BucketProps, obj: DVVSet, opts: PutOptions
    ) -> PutResult:
        """Write an object another cluster sent into every replica as it is.

        Each replica merges it by causal clock with what it holds (siblings kept where
        the bucket allows them), so no vnode coordinates it: it is no new event, gets no
        new dot, and is not a client write, so nothing here queues it for replication.
        Merging commutes, so any node can apply it without forwarding. `opts` are the
        quorums to wait for (a sink passes the bucket's, as for a client write there);
        the answer is the object as this node's replica now holds it, else as sent.
        """
        prefs = self._preflist(bkey, props)
        core = self._put_core(prefs, props, opts)
        if isinstance(core, Failed):
            return core
        result = await self._send_to_replicas(prefs, core, bkey.okey, obj, props, opts, None)
        if isinstance(result, Failed):
            return result
        here = next((e.partition for e in prefs if e.node == self.me), None)
        held = None if here is None else self.vnodes.get(here, bkey.okey)
        if held is None:
            held = riak_object.merge(None, obj, allow_mult=props.allow_mult)
        return PutOk(held)

    # ------------------------------------------------------------ reap

    async def reap(self, bkey: BKey, props: BucketProps, timeout: float) -> ReapOutcome:
        """Remove the key's tombstone from every primary, if every primary holds the same one
        and (with replication) no member's queue still holds the key for a sink."""
        ring = self.membership.ring
        partition = ring.partition_of(bkey.bucket_type, bkey.bucket, bkey.key)
        wanted = primaries(ring, partition, props.n_val)
        down = reaping.missing_primary(wanted, self._preflist(bkey, props))
        if down is not None:
            return down
        okey = bkey.okey
        copies = await asyncio.gather(*(self._read_copy(e, okey, timeout) for e in wanted))
        version = reaping.judge(copies)
        if isinstance(version, ReapOutcome):
            return version
        if self.reap_gate is not None:
            held = await self.reap_gate(bkey, props, reaping.deleted_at_us(copies), timeout)
            if held is not None:
                return held
        removed = await asyncio.gather(
            *(self._reap_copy(e, okey, version, timeout) for e in wanted)
        )
        return reaping.confirmed(removed)

    def _reap_later(self, bkey: BKey, props: BucketProps, timeout: float) -> None:
        """Reap after delete_mode's delay, in the background. A reap a replication queue holds
        back is tried again at growing delays; any other deferral leaves the tombstone for
        a later GET or the operator's reap to try again."""
        mode = props.delete_mode
        okey = bkey.okey
        if mode == KEEP or okey in self._reaps_due:
            return
        self._reaps_due.add(okey)
        delay = 0.0 if mode == IMMEDIATE else int(mode) / 1000
        self._spawn(self._reap_after(bkey, props, delay, timeout))

    async def _reap_after(
        self, bkey: BKey, props: BucketProps, delay: float, timeout: float
    ) -> None:
        try:
            for wait in (delay, *reaping.REPLICATION_RETRIES):
                # The running loop's timer: the simulation's virtual clock moves it too.
                await asyncio.sleep(wait)
                outcome = await self.reap(bkey, props, timeout)
                log.debug("reap of %r: %s %s", bkey, outcome.outcome, outcome.reason)
                if not outcome.replicating:
                    break
        except Exception:  # a failed reap leaves a tombstone, never a crashed task
            log.exception("reap of %r failed", bkey)
        finally:
            self._reaps_due.discard(bkey.okey)

    async def _read_copy(self, entry: PrefEntry, okey: bytes, timeout: float) -> reaping.Copy:
        if entry.node == self.me:
            reply = self._local_get(entry.partition, okey)
            return reply if isinstance(reply, Failed) else reply.obj
        try:
            raw = await self.transport.request(
                entry.node, Get(entry.partition, okey).to_wire(), timeout
            )
            return None if raw is None else riak_object.decode(raw)
        except (TransportError, riak_object.CodecError) as exc:
            return Failed(_describe(entry, exc))

    async def _reap_copy(
        self, entry: PrefEntry, okey: bytes, version: bytes, timeout: float
    ) -> bool:
        if entry.node == self.me:
            return self.vnodes.reap(entry.partition, okey, version)
        message = Reap(entry.partition, okey, version).to_wire()
        try:
            return bool(await self.transport.request(entry.node, message, timeout))
        except TransportError as exc:
            log.info("reap of %r on %s failed: %s", okey, entry.node, exc)
            return False

    # ------------------------------------------------------------ internode

    async def serve_coordinate_put(self, _source: str, message: CoordinatePut) -> list:
        """Coordinate a write another node forwarded: [True, stored object] or [False, reason]."""
        btype, bucket, key = message.key
        w, dw, pw, node_confirms, timeout = message.quorums
        content = riak_object.contents(riak_object.decode(message.content))[0]
        result = await self.put(
            BKey(btype, bucket, key),
            _props_from_wire(message.props),
            dict(message.context),
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
    except TransportError as exc:
        reply = Failed(_describe(entry, exc))
    except riak_object.CodecError as exc:
        # The replica's copy is unreadable (its disk rotted it): as good as lost, so it
        # counts as not found and the read repair overwrites it with the merge.
        log.warning("unreadable copy on %s; repairing it", _describe(entry, exc))
        reply = NotFound()
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
