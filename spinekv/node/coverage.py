"""Coverage queries: ask one replica of every partition once (2i, listings, operator folds).

Key partition p is replicated on vnodes p .. p+n-1, so vnode v holds the keys of
partitions v-n+1 .. v. A coverage plan picks, for every key partition, one up
primary vnode holding it, preferring the vnode furthest along so that one vnode
answers for up to n partitions (about Q/n requests in all, as riak_core's
coverage plans). Each vnode is told exactly which key partitions it answers for
and filters out the rest, so no key is counted twice.

The plan is pure. `Coverage` sends the fold to each chosen vnode (or runs it
locally), streams each vnode's answer to the caller as it arrives, and re-plans
the partitions of a vnode that failed once, around the node that failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .. import index
from .. import object as riak_object
from ..index import Query
from ..ring import Ring
from ..storage import keys
from ..transport.base import Transport, TransportError
from . import folds
from .messages import Cover
from .vnode import VnodeContract

log = logging.getLogger("spinekv.coverage")

# A fold yields to the event loop after this many keys, so a long listing does not
# stall the node's other requests.
YIELD_EVERY = 500


class CoverageFailed(Exception):
    """No plan could cover every partition, or a vnode failed twice; says which and why."""


@dataclass(frozen=True)
class Assignment:
    node: str
    vnode: int
    partitions: tuple[int, ...]  # the key partitions this vnode answers for


def plan(
    ring: Ring,
    n_val: int,
    is_up: Callable[[str], bool],
    partitions: Iterable[int] | None = None,
) -> list[Assignment]:
    """Assign every key partition (or those given) to one up primary vnode holding it."""
    size = ring.ring_size
    wanted = sorted(set(range(size) if partitions is None else partitions))
    todo = set(wanted)
    chosen: dict[tuple[str, int], list[int]] = {}
    for kp in wanted:
        if kp not in todo:
            continue
        for offset in range(min(n_val, size) - 1, -1, -1):
            vnode = (kp + offset) % size
            owner = ring.owners[vnode]
            if is_up(owner):
                break
        else:
            holders = ", ".join(ring.owners[(kp + i) % size] for i in range(min(n_val, size)))
            raise CoverageFailed(
                f"coverage unsatisfied: no replica of partition {kp} is reachable "
                f"(its primaries {holders} are down)"
            )
        mine = [(kp + j) % size for j in range(offset + 1) if (kp + j) % size in todo]
        todo.difference_update(mine)
        chosen.setdefault((owner, vnode), []).extend(mine)
    return [Assignment(node, vnode, tuple(sorted(kps))) for (node, vnode), kps in chosen.items()]


# ------------------------------------------------------------------ folds on one vnode


def _wanted(ring: Ring, partitions: frozenset[int] | None) -> Callable[[bytes, bytes, bytes], bool]:
    if partitions is None:
        return lambda btype, bucket, key: True
    return lambda btype, bucket, key: ring.partition_of(btype, bucket, key) in partitions


async def fold_index(
    vnodes: VnodeContract, ring: Ring, vnode: int, partitions: frozenset[int] | None, q: Query
) -> list[list]:
    """[term, key] pairs on `vnode` matching `q`, in order, at most q.max_results."""
    wanted = _wanted(ring, partitions)
    low, high = index.scan_bounds(q)
    special = q.field in index.SPECIAL  # $bucket and $key scan objects, not index entries
    out: list[list] = []
    for seen, (k, value) in enumerate(vnodes.fold(vnode, low, high, index=not special), 1):
        if seen % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        term, key = index.split_entry(q, k)
        if not wanted(q.bucket_type, q.bucket, key) or not index.term_matches(q, term):
            continue
        if special and riak_object.is_encoded_tombstone(value):
            continue
        out.append([term, key])
        if q.max_results is not None and len(out) >= q.max_results:
            break
    return out


async def fold_buckets(vnodes: VnodeContract, vnode: int, bucket_type: bytes) -> list[bytes]:
    """Buckets of `bucket_type` with at least one live object on `vnode`."""
    type_prefix = keys.bucket_prefix(bucket_type)
    low, high = type_prefix, keys.successor(type_prefix)
    found = []
    steps = 0
    while True:
        bucket = None
        for okey, value in vnodes.fold(vnode, low, high):
            steps += 1
            if steps % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            name = keys.bucket_of(okey, type_prefix)
            if bucket is None:
                bucket = name
            elif name != bucket:
                break  # that bucket holds only tombstones here
            if not riak_object.is_encoded_tombstone(value):
                found.append(bucket)
                break
        if bucket is None:
            return found
        low = keys.successor(keys.bucket_prefix(bucket_type, bucket))  # skip its other keys


# ------------------------------------------------------------------ the driver


class Coverage:
    """Runs coverage folds across the cluster for one node."""

    def __init__(
        self,
        me: str,
        membership,
        vnodes: VnodeContract,
        transport: Transport,
        backlog: Callable[[], int],
    ) -> None:
        self.me = me
        self.membership = membership
        self.vnodes = vnodes
        self.transport = transport
        # Every operator fold on this node shares one pacer, which yields to the clients
        # waiting for an answer here (`backlog`).
        self._pacer = folds.Pacer(backlog)

    async def run(
        self, kind: str, args: list, n_val: int, timeout: float, *, every_vnode: bool = False
    ) -> AsyncIterator[list]:
        """Each covering vnode's answer, as it arrives. CoverageFailed if one cannot be had.

        With `every_vnode`, ask every partition's owner with no filter (bucket listing,
        where buckets of any n_val must be seen and duplicates are merged anyway).
        """
        ring = self.membership.ring
        if every_vnode:
            todo = [
                Assignment(owner, v, ())
                for v, owner in enumerate(ring.owners)
                if self.membership.is_up(owner)
            ]
            if len(todo) < ring.ring_size:
                down = sorted({o for o in ring.owners if not self.membership.is_up(o)})
                raise CoverageFailed(f"coverage unsatisfied: owners {', '.join(down)} are down")
        else:
            todo = plan(ring, n_val, self.membership.is_up)
        failed_nodes: set[str] = set()
        retried = False
        while todo:
            pending = [
                asyncio.ensure_future(self._ask(a, kind, args, timeout, every_vnode)) for a in todo
            ]
            todo = []
            try:
                for fut in asyncio.as_completed(pending):
                    assignment, answer, exc = await fut
                    if exc is None:
                        yield answer
                        continue
                    where = f"{assignment.node} (partition {assignment.vnode})"
                    if retried or every_vnode:
                        raise CoverageFailed(f"coverage failed: {where}: {exc}")
                    log.info("coverage: %s failed (%s); re-planning around it", where, exc)
                    failed_nodes.add(assignment.node)
                    todo += plan(
                        ring,
                        n_val,
                        lambda n: n not in failed_nodes and self.membership.is_up(n),
                        assignment.partitions,
                    )
            finally:
                for fut in pending:
                    fut.cancel()
            retried = retried or bool(todo)

    async def _ask(
        self, a: Assignment, kind: str, args: list, timeout: float, every_vnode: bool
    ) -> tuple[Assignment, list | None, Exception | None]:
        """(assignment, answer, None), or (assignment, None, the error)."""
        partitions = None if every_vnode else list(a.partitions)
        try:
            if a.node == self.me:
                return a, await self.fold(a.vnode, partitions, kind, args), None
            message = Cover(a.vnode, partitions, kind, args).to_wire()
            return a, await self.transport.request(a.node, message, timeout), None
        except (TransportError, CoverageFailed) as exc:
            return a, None, exc
        except Exception as exc:  # a corrupt record here must fail the query, not the node
            log.exception("coverage fold on partition %d failed", a.vnode)
            return a, None, exc

    async def fold(self, vnode: int, partitions: list[int] | None, kind: str, args: list) -> list:
        """Answer one coverage request on this node's copy of `vnode`."""
        ring = self.membership.ring
        kps = None if partitions is None else frozenset(partitions)
        if kind == "index":
            return await fold_index(self.vnodes, ring, vnode, kps, Query.from_wire(args))
        if kind == "buckets":
            return await fold_buckets(self.vnodes, vnode, args[0])
        if kind in folds.KINDS:
            return await folds.run(self.vnodes, vnode, _wanted(ring, kps), kind, args, self._pacer)
        raise ValueError(f"unknown coverage fold {kind!r}")

    def serve(self, _source: str, message: Cover) -> Any:
        """A peer's coverage request (an awaitable of the fold's answer)."""
        return self.fold(message.vnode, message.partitions, message.kind, message.args)
