"""The source side of real-time replication over HTTP: a sink fetches a node's queued
changes with the current objects, and acknowledges them once applied (Riak 3's sinks
use the source's client API the same way). Callers need the `repl` permission."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping

import msgpack
from aiohttp import web

from .. import object as riak_object
from ..config import ClusterConfig
from ..node.coordinator import BKey, Coordinator
from ..node.replqueues import ReplQueue, ReplQueues
from ..props import BucketProps
from ..quorum import Failed, NotFound, get_options
from ..repllease import Leases
from ..replqueue import Entry
from . import api, openapi
from .request import HttpError, count, json_answer, refusing, shown

MSGPACK = "application/x-msgpack"
DEFAULT_MAX = 100
MOST = 1000
READS_AT_ONCE = 32  # current objects read in parallel for one fetch
# "<cluster name>/<node>" as sinks send it; also what a 409 shows, so kept printable.
CONSUMER = re.compile(r"^[A-Za-z0-9_.:/@-]{1,128}$")


class ReplHandlers:
    def __init__(
        self,
        config: ClusterConfig,
        coordinator: Coordinator,
        queues: ReplQueues,
        props_of: Callable[[str, str], BucketProps | None],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.coordinator = coordinator
        self.queues = queues
        self._props_of = props_of
        self.leases = Leases(clock)

    def _queue(self, request: web.Request) -> ReplQueue:
        name = request.match_info["queue"]
        queue = self.queues.queues.get(name)
        if queue is None:
            raise HttpError(404, f"no replication queue {shown(name)} on this node")
        return queue

    @staticmethod
    def _consumer(query: Mapping[str, str]) -> str:
        consumer = query.get("consumer", "")
        if not CONSUMER.match(consumer):
            raise HttpError(
                400, f"consumer={shown(consumer)}: expected 1-128 of A-Z a-z 0-9 _ . : / @ -"
            )
        return consumer

    @refusing(json_answer)
    async def fetch(self, request: web.Request) -> web.Response:
        """Take the queue's lease, then answer its oldest entries with their current objects."""
        queue = self._queue(request)
        most = count(request.query, "max", DEFAULT_MAX)
        if not 1 <= most <= MOST:
            raise HttpError(400, f"max must be from 1 to {MOST}")
        consumer = self._consumer(request.query)
        held = self.leases.take(queue.name, consumer)
        if held is not None:
            raise HttpError(
                409,
                f"queue {queue.name!r} is leased to {held.holder!r} for "
                f"{held.remaining:.1f} s more",
            )
        batch = queue.read(most)
        gate = asyncio.Semaphore(READS_AT_ONCE)

        async def current(entry: Entry) -> bytes | None:
            async with gate:
                return await self._current(entry)

        objects = await asyncio.gather(*(current(entry) for _, entry in batch))
        entries = [
            [seq, e.bucket_type, e.bucket, e.key, obj, e.queued_at]
            for (seq, e), obj in zip(batch, objects, strict=True)
        ]
        body = msgpack.packb({"entries": entries, "depth": queue.depth}, use_bin_type=True)
        return web.Response(body=body, content_type=MSGPACK)

    async def _current(self, entry: Entry) -> bytes | None:
        """The key's object as the cluster holds it now (a tombstone included); None if gone."""
        props = self._props_of(
            entry.bucket_type.decode(errors="replace"), entry.bucket.decode(errors="replace")
        )
        if props is None:  # the type was removed since: nothing a sink could apply
            return None
        opts = get_options(props, {}, self.config.request_timeout_ms / 1000)
        bkey = BKey(entry.bucket_type, entry.bucket, entry.key)
        found = await self.coordinator.get(bkey, props, opts)
        if isinstance(found, Failed):
            # Nothing is acknowledged yet, so the sink fetches the batch again later.
            raise HttpError(503, f"cannot read a queued key: {found.reason}")
        if isinstance(found, NotFound):
            return None if found.obj is None else riak_object.encode(found.obj)
        return riak_object.encode(found.obj)

    @refusing(json_answer)
    async def ack(self, request: web.Request) -> web.Response:
        """Remove the entries up to `upto`: only the consumer that holds the lease may."""
        queue = self._queue(request)
        upto = count(request.query, "upto")
        consumer = self._consumer(request.query)
        holder = self.leases.holder(queue.name)
        if holder != consumer:
            raise HttpError(409, f"queue {queue.name!r} is leased to {holder!r}, not {consumer!r}")
        queue.ack(upto)
        return web.json_response({"depth": queue.depth})

    def routes(self) -> list[api.Route]:
        return [
            api.post("/repl/queues/{queue}/fetch", self.fetch, _FETCH),
            api.post("/repl/queues/{queue}/ack", self.ack, _ACK),
        ]


# ------------------------------------------------------------------ OpenAPI descriptions

_CONSUMER = api.query(
    "consumer",
    {"type": "string", "pattern": CONSUMER.pattern},
    'Who drains the queue: a sink sends "<its cluster name>/<its node>".',
    required=True,
)
_REFUSED = {
    "400": openapi.ADMIN_REFUSED["400"],
    "404": api.json_answer(api.schema("AdminResult"), "No such queue on this node."),
    "409": api.json_answer(
        api.schema("AdminResult"), "Another consumer holds the queue's lease: who, for how long."
    ),
}
_FETCH = api.Operation(
    permission="repl",
    summary=(
        "Take (or renew) this node's queue lease for 30 s and read its oldest entries with "
        "each key's current object"
    ),
    tag="replication",
    responses={
        "200": {
            "description": (
                'msgpack {"entries": [[seq, type, bucket, key, object or nil, queued_at], '
                '...], "depth": entries queued}. The object is the encoded current object '
                "(a tombstone too), nil when the key is gone; queued_at is the source's "
                "enqueue time (Unix seconds). Entries stay queued until acknowledged."
            ),
            "content": {MSGPACK: {"schema": {"type": "string", "format": "binary"}}},
        },
        **_REFUSED,
        "503": api.json_answer(api.schema("AdminResult"), "A queued key could not be read."),
    },
    params=(
        api.query(
            "max",
            {"type": "integer", "minimum": 1, "maximum": MOST},
            f"At most this many entries (default {DEFAULT_MAX}).",
        ),
        _CONSUMER,
    ),
)
_ACK = api.Operation(
    permission="repl",
    summary="Remove the queue's entries up to a sequence number (the lease holder only)",
    tag="replication",
    responses={
        "200": api.json_answer(
            {"type": "object", "properties": {"depth": {"type": "integer"}}},
            "The entries left.",
        ),
        **_REFUSED,
    },
    params=(
        api.query(
            "upto",
            {"type": "integer", "minimum": 0},
            "The last sequence number applied (inclusive).",
            required=True,
        ),
        _CONSUMER,
    ),
)
