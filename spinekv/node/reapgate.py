"""Reaping waits for replication: a tombstone stays while any member's queue still holds its key.

A client's delete is queued on the node the client asked (the coordinator's listeners),
and a sink acknowledges entries in order, each only once it has applied it. So before
a reap every member is asked (ReplHolds) whether a queue that carries the key may still
hold a change of it from no later than the delete, or a write of it is still under way
there and not queued yet. A member that cannot be asked holds the reap back: its queues
are unknown. Without [[replication.source]] tables (every node has the same config)
nobody is asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .. import reaping
from ..props import BucketProps
from ..reaping import ReapOutcome
from ..replqueue import hold_reason
from ..transport.base import Transport
from .coordinator import BKey
from .membership import Membership
from .messages import ReplHolds
from .replqueues import ReplQueues


class ReapGate:
    """Asks every member's queues before a reap (`check`); answers the others' (`serve`)."""

    def __init__(
        self,
        me: str,
        membership: Membership,
        transport: Transport,
        queues: ReplQueues,
        writing: Callable[[bytes], bool],
        request_timeout: float,
    ) -> None:
        self.me = me
        self._membership = membership
        self._transport = transport
        self._queues = queues
        self._writing = writing
        self._request_timeout = request_timeout

    async def check(
        self, bkey: BKey, props: BucketProps, deleted_at_us: int, timeout: float
    ) -> ReapOutcome | None:
        """Why replication holds back reaping the key's tombstone (written at
        `deleted_at_us`), or None when every sink that carries the key has it."""
        if not self._queues.queues:
            return None
        # A delete is queued once acknowledged: after at most one request timeout for each
        # replica it was forwarded to in turn and one to coordinate it, and one more for
        # the event loop's own lag. Its entry is no later than this.
        margin = (props.n_val + 2) * self._request_timeout
        after = deleted_at_us / 1_000_000 + margin
        members = self._membership.state.member_names()
        answers = await asyncio.gather(*(self._ask(node, bkey, after, timeout) for node in members))
        return reaping.held_back(answers)

    async def _ask(self, node: str, bkey: BKey, after: float, timeout: float) -> str | None:
        if node == self.me:
            return self.holds(bkey, after)
        if not self._membership.is_up(node):
            return f"replication queues on {node} unknown: {node} is down"
        message = ReplHolds([bkey.bucket_type, bkey.bucket, bkey.key], after).to_wire()
        try:
            answer = await self._transport.request(node, message, timeout)
        except Exception as exc:  # unanswered, or a node that does not know the question
            return f"replication queues on {node} unknown: {type(exc).__name__} {exc}".rstrip()
        return None if answer is None else str(answer)

    def holds(self, bkey: BKey, after: float) -> str | None:
        """Why this node's queues may still hold a change of the key from no later than
        `after` that a sink has not applied, or None."""
        if self._writing(bkey.okey):
            return f"a write of the key is still being queued on {self.me}"
        held = self._queues.holding(bkey, after)
        if held is None:
            return None
        queue, why = held
        return hold_reason(queue, self.me, why)

    def serve(self, _source: str, message: ReplHolds) -> str | None:
        bucket_type, bucket, key = message.key
        return self.holds(BKey(bytes(bucket_type), bytes(bucket), bytes(key)), message.after)
