"""Operator folds under /admin/fold (Riak 3's aae_fold): object stats, find keys, erase;
/admin/reap, which reaps the tombstones a fold finds; and /admin/fullsync, a scope's
full-sync tree and the keys of some of its segments."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from aiohttp import web

from .. import object as riak_object
from ..config import ClusterConfig
from ..fullsync import DEFAULT_MAX_KEYS
from ..node import folds, fullsync_folds
from ..node.coordinator import BKey, Coordinator
from ..node.coverage import CoverageFailed
from ..node.folds import ObjectStats, Scope
from ..props import BucketProps
from ..quorum import Failed, NotFound
from ..reaping import Outcome, ReapOutcome, Tally
from . import api, openapi
from .request import HttpError, count, delete_options, json_answer, refusing, shown, timeout

# A fold over a large node is paced to a tenth of its time: give it longer than a request.
FOLD_TIMEOUT_MS = 600_000
ERASE_RATE = 500  # keys per second the erase deletes at, by default
MAX_ERASE_RATE = 100_000
ERASED, GONE, FAILED = "erased", "already_gone", "failed"
# The pace for reaping: at most this many keys a second per node. One node drives a
# reap, and each key costs each of its primaries one read and one delete, so pacing the
# driver paces every node.
REAP_RATE = 2000
PROGRESS_EVERY = 0.5  # seconds between progress lines of a reap
_T = TypeVar("_T")


def _positions(query: Mapping[str, str], name: str, top: int) -> list[int]:
    """name=1,2,3: positions from 0 to top - 1 (branches or segments of the full-sync tree).
    A URL of 8 KiB bounds how many fit."""
    raw = query.get(name, "")
    parts = raw.split(",") if raw else []
    if not all(p.isascii() and p.isdigit() and len(p) <= 6 and int(p) < top for p in parts):
        raise HttpError(400, f"{name}={shown(raw)}: expected integers from 0 to {top - 1}")
    return [int(p) for p in parts]


class FoldHandlers:
    def __init__(
        self,
        config: ClusterConfig,
        coordinator: Coordinator,
        now_us: Callable[[], int],
        props_of: Callable[[str, str], BucketProps | None],
    ) -> None:
        self.config = config
        self.coordinator = coordinator
        self._now_us = now_us
        self._props_of = props_of

    def _scope(self, query: Mapping[str, str], *, need_bucket: bool = False) -> tuple[Scope, int]:
        """The fold's scope, and the n_val its coverage plan may assume."""
        type_name = query.get("type")
        bucket = query.get("bucket")
        if bucket is not None and type_name is None:
            type_name = "default"
        if need_bucket and bucket is None:
            raise HttpError(400, "bucket is required")
        if type_name == self.config.records.bucket_type:
            raise HttpError(
                403, f"bucket type {type_name!r} is reached only through the record API"
            )
        props = None if type_name is None else self._props_of(type_name, bucket or "")
        if type_name is not None and props is None:
            raise HttpError(400, f"type={shown(type_name)}: no such bucket type")
        scope = Scope(
            None if type_name is None else type_name.encode(),
            None if bucket is None else bucket.encode(),
            query.get("prefix", "").encode(),
        )
        # A bucket may set its own n_val; unless one bucket is named, each key partition is
        # answered by its first primary, which holds it whatever the n_val (so all must be up).
        return scope, props.n_val if props is not None and bucket is not None else 1

    async def _folding(
        self, query: Mapping[str, str], work: Callable[[float], Awaitable[_T]]
    ) -> _T:
        """`work(timeout)`, a coverage fold, under the request's timeout; 503 if it fails."""
        limit = timeout(query, FOLD_TIMEOUT_MS)
        try:
            async with asyncio.timeout(limit):
                return await work(limit)
        except CoverageFailed as exc:
            raise HttpError(503, str(exc)) from None
        except TimeoutError:
            raise HttpError(503, f"fold timed out after {limit:g}s") from None

    async def _collect(self, query: Mapping[str, str], kind: str, args: list, n_val: int) -> list:
        async def work(limit: float) -> list:
            coverage = self.coordinator.coverage
            return [part async for part in coverage.run(kind, args, n_val, limit)]

        return await self._folding(query, work)

    def _fullsync_scope(self, query: Mapping[str, str]) -> tuple[Scope, int]:
        if "type" not in query and "bucket" not in query:
            raise HttpError(400, "full-sync compares a bucket type or a bucket: give type=")
        return self._scope(query)

    @refusing(json_answer)
    async def fullsync_tree(self, request: web.Request) -> web.Response:
        """The scope's full-sync tree: root and branch hashes, the segment hashes of the
        branches asked for, and with tree=true all its segments (base64 of Tree.to_bytes)."""
        query = request.query
        scope, n_val = self._fullsync_scope(query)
        shape = folds.FULLSYNC_SHAPE
        branches = _positions(query, "branches", shape.branches)
        coverage = self.coordinator.coverage
        tree = await self._folding(
            query, lambda limit: fullsync_folds.cluster_tree(coverage, scope, n_val, limit)
        )
        answer: dict = {"root": tree.root, "branches": list(tree.branches)}
        if branches:
            segments = [s for b in branches for s in shape.segments_of(b)]
            answer["segments"] = tree.segment_hashes(segments)
        if query.get("tree") == "true":
            answer["tree"] = base64.b64encode(tree.to_bytes()).decode()
        return web.json_response(answer)

    @refusing(json_answer)
    async def fullsync_keys(self, request: web.Request) -> web.Response:
        """(type, bucket, key, version) of the scope's objects in the given segments."""
        query = request.query
        scope, n_val = self._fullsync_scope(query)
        segments = _positions(query, "segments", folds.FULLSYNC_SHAPE.segments)
        if not segments:
            raise HttpError(400, "segments is required")
        most = count(query, "limit", DEFAULT_MAX_KEYS)
        if not most or most > DEFAULT_MAX_KEYS:
            raise HttpError(400, f"limit must be from 1 to {DEFAULT_MAX_KEYS}")
        coverage = self.coordinator.coverage
        found = await self._folding(
            query,
            lambda limit: fullsync_folds.segment_keys(
                coverage, scope, segments, most, n_val, limit
            ),
        )
        return web.json_response(
            {
                "complete": found.complete,
                "keys": [
                    {
                        "type": t.decode(errors="replace"),
                        "bucket": b.decode(errors="replace"),
                        "key": k.decode(errors="replace"),
                        "version": v.hex(),
                    }
                    for (t, b, k), v in found.versions.items()
                ],
            }
        )

    @refusing(json_answer)
    async def object_stats(self, request: web.Request) -> web.Response:
        scope, n_val = self._scope(request.query)
        stats = ObjectStats()
        for part in await self._collect(
            request.query, folds.OBJECT_STATS, [scope.to_wire()], n_val
        ):
            stats.merge(ObjectStats.from_wire(part))
        return web.json_response(stats.to_json())

    @refusing(json_answer)
    async def find_keys(self, request: web.Request) -> web.Response:
        query = request.query
        measures = [m for m in (folds.SIBLINGS, folds.SIZE) if m in query]
        if len(measures) != 1:
            raise HttpError(400, "give exactly one of siblings=N or size=BYTES")
        measure = measures[0]
        scope, n_val = self._scope(query)
        args = [scope.to_wire(), measure, count(query, measure)]
        records = self.config.records.bucket_type.encode()
        found = sorted(
            (bytes(t), bytes(b), bytes(k), siblings, size)
            for part in await self._collect(query, folds.FIND_KEYS, args, n_val)
            for t, b, k, siblings, size in part
            if bytes(t) != records
        )
        return web.json_response(
            {
                "keys": [
                    {
                        "type": t.decode(errors="replace"),
                        "bucket": b.decode(errors="replace"),
                        "key": k.decode(errors="replace"),
                        "siblings": siblings,
                        "size": size,
                    }
                    for t, b, k, siblings, size in found
                ]
            }
        )

    @refusing(json_answer)
    async def erase(self, request: web.Request) -> web.Response:
        """Tombstone every live key in scope through the coordinator, at `rate` keys/s."""
        query = request.query
        scope, n_val = self._scope(query, need_bucket=True)
        rate = count(query, "rate", ERASE_RATE)
        if not rate or rate > MAX_ERASE_RATE:
            raise HttpError(400, f"rate must be from 1 to {MAX_ERASE_RATE} keys per second")
        parts = await self._collect(query, folds.ERASABLE, [scope.to_wire()], n_val)
        found = sorted({(bytes(t), bytes(b), bytes(k)) for part in parts for t, b, k in part})
        if query.get("dry_run") == "true":
            return web.json_response({"found": len(found)})
        props = self._props_of(query.get("type", "default"), query["bucket"])
        assert props is not None  # _scope checked the type
        counts = {ERASED: 0, GONE: 0}
        failed = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i, (btype, bucket, key) in enumerate(found):
            await asyncio.sleep(max(0.0, started + i / rate - loop.time()))
            outcome, reason = await self._erase_one(BKey(btype, bucket, key), props)
            if outcome == FAILED:
                failed.append({"key": key.decode(errors="replace"), "reason": reason})
            else:
                counts[outcome] += 1
        return web.json_response({"found": len(found), **counts, "failed": failed})

    async def _erase_one(self, bkey: BKey, props: BucketProps) -> tuple[str, str]:
        """(ERASED, ""), (GONE, "") if nothing was there to delete, or (FAILED, why).

        It reads first, as a client's delete does, so the tombstone covers every replica's
        version and not only the copy the fold saw.
        """
        read_opts, put_opts = delete_options({}, props, self.config.request_timeout_ms)
        found = await self.coordinator.get(bkey, props, read_opts)
        if isinstance(found, NotFound):
            return GONE, ""
        if isinstance(found, Failed):
            return FAILED, found.reason
        context = riak_object.context(found.obj)
        result = await self.coordinator.delete(bkey, props, context, put_opts)
        return (FAILED, result.reason) if isinstance(result, Failed) else (ERASED, "")

    @refusing(json_answer)
    async def reap(self, request: web.Request) -> web.StreamResponse:
        """Reap the tombstones in scope older than `older_than` seconds, at `rate` keys/s.

        The answer streams as NDJSON, so a client can show progress: {"found": N} once the
        fold is done, a progress line about every half second, and the totals last, with the
        deferrals counted by reason.
        """
        query = request.query
        scope, n_val = self._scope(query)
        rate = count(query, "rate", REAP_RATE)
        if not rate or rate > MAX_ERASE_RATE:
            raise HttpError(400, f"rate must be from 1 to {MAX_ERASE_RATE} keys per second")
        older_than = count(query, "older_than", 0)
        before_us = self._now_us() - older_than * 1_000_000
        args = [scope.to_wire(), before_us]
        membership = self.coordinator.membership
        if not all(membership.is_up(owner) for owner in membership.ring.owners):
            # The whole-cluster plan needs every owner; with one down, fold with the type's
            # n_val so the tombstones its partitions hold are found (and deferred) on their
            # other primaries. A bucket set to a smaller n_val may then be missed: reaping
            # later catches it, and a reap never removes what it should not.
            type_props = self._props_of(query.get("type", "default"), query.get("bucket", ""))
            n_val = (type_props or self.config.bucket_defaults).n_val
        records = self.config.records.bucket_type.encode()
        found = sorted(
            {
                (bytes(t), bytes(b), bytes(k))
                for part in await self._collect(query, folds.REAPABLE, args, n_val)
                for t, b, k, _ in part
                if bytes(t) != records
            }
        )
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)

        async def say(line: dict) -> None:
            await response.write(json.dumps(line).encode() + b"\n")

        tally = Tally(len(found))
        await say({"found": tally.found})
        if query.get("dry_run") != "true":
            loop = asyncio.get_running_loop()
            started = said = loop.time()
            limit = self.config.request_timeout_ms / 1000
            for i, (btype, bucket, key) in enumerate(found):
                await asyncio.sleep(max(0.0, started + i / rate - loop.time()))
                tally.add(await self._reap_one(BKey(btype, bucket, key), limit))
                if loop.time() - said >= PROGRESS_EVERY:
                    said = loop.time()
                    await say(tally.progress())
        await say(tally.final())
        await response.write_eof()
        return response

    async def _reap_one(self, bkey: BKey, limit: float) -> ReapOutcome:
        type_name = bkey.bucket_type.decode(errors="replace")
        bucket = bkey.bucket.decode(errors="replace")
        props = self._props_of(type_name, bucket)
        if props is None:
            return ReapOutcome(Outcome.DEFERRED, f"no bucket type {type_name!r}")
        return await self.coordinator.reap(bkey, props, limit)

    def routes(self) -> list[api.Route]:
        return [
            api.get("/admin/fold/object-stats", self.object_stats, _OBJECT_STATS),
            api.get("/admin/fold/find-keys", self.find_keys, _FIND_KEYS),
            api.post("/admin/fold/erase", self.erase, _ERASE),
            api.post("/admin/reap", self.reap, _REAP),
            api.get("/admin/fullsync/tree", self.fullsync_tree, _FULLSYNC_TREE),
            api.get("/admin/fullsync/keys", self.fullsync_keys, _FULLSYNC_KEYS),
        ]


# ------------------------------------------------------------------ OpenAPI descriptions

_ANSWERS = {
    **openapi.ADMIN_RESULT,
    "400": openapi.ADMIN_REFUSED["400"],
    "403": api.json_answer(api.schema("AdminResult"), "The records type: {error}."),
    "503": api.json_answer(api.schema("AdminResult"), "A partition could not answer: {error}."),
}
_SCOPE = (
    api.query("type", {"type": "string"}, "Only this bucket type (default: every type)."),
    api.query("bucket", {"type": "string"}, "Only this bucket (of type, or of default)."),
    "timeout",
)
_OBJECT_STATS = api.Operation(
    permission="admin",
    summary="Count, total and largest size, sibling histogram and tombstones of stored objects",
    tag="admin",
    responses=_ANSWERS,
    params=_SCOPE,
)
_FIND_KEYS = api.Operation(
    permission="admin",
    summary="Keys with more than N siblings, or larger than BYTES",
    tag="admin",
    responses=_ANSWERS,
    params=(
        *_SCOPE,
        api.query("siblings", {"type": "integer", "minimum": 0}, "Keys with more siblings."),
        api.query("size", {"type": "integer", "minimum": 0}, "Keys larger than this (bytes)."),
    ),
)
_ERASE = api.Operation(
    permission="admin",
    summary="Delete (write tombstones for) the keys of a bucket, paced",
    tag="admin",
    responses=_ANSWERS,
    params=(
        *_SCOPE,
        api.query("prefix", {"type": "string"}, "Only keys starting with this."),
        api.query("rate", {"type": "integer", "minimum": 1}, "Keys deleted per second."),
        api.query("dry_run", api.BOOL, "Only count the keys that would be deleted."),
    ),
)
_REAP = api.Operation(
    permission="admin",
    summary="Reap the tombstones every primary holds alike, paced; progress streams as NDJSON",
    tag="admin",
    responses={
        "200": {
            "description": (
                'One JSON object a line: {"found": N} after the fold, then progress lines '
                '{"found", "done", "reaped", "deferred", "not_tombstone", "gone"} about every '
                'half second, and last the totals with "deferred_reasons" (reason -> count).'
            ),
            "content": {"application/x-ndjson": {"schema": {"type": "object"}}},
        },
        "400": openapi.ADMIN_REFUSED["400"],
        "403": _ANSWERS["403"],
        "503": _ANSWERS["503"],
    },
    params=(
        *_SCOPE,
        api.query(
            "older_than",
            {"type": "integer", "minimum": 0},
            "Only tombstones last changed at least this many seconds ago (default 0).",
        ),
        api.query(
            "rate", {"type": "integer", "minimum": 1}, "Keys reaped per second (default 2000)."
        ),
        api.query("dry_run", api.BOOL, "Only count the tombstones that would be reaped."),
    ),
)
_POSITIONS = {"type": "string", "pattern": "^[0-9]+(,[0-9]+)*$"}
_FULLSYNC_TREE = api.Operation(
    permission="admin",
    summary=(
        "The full-sync Tictac tree of a bucket type or bucket, keyed by key hash alone "
        "(comparable across ring sizes): root, branch hashes, asked branches' segments"
    ),
    tag="admin",
    responses=_ANSWERS,
    params=(
        *_SCOPE,
        api.query(
            "branches",
            _POSITIONS,
            "Comma-separated branches (0 to 255): answer their segments' hashes, in order.",
        ),
        api.query("tree", api.BOOL, "Also every segment hash (base64, big-endian 32-bit)."),
    ),
)
_FULLSYNC_KEYS = api.Operation(
    permission="admin",
    summary="Type, bucket, key and version (hex digest of the clock) of the objects in segments",
    tag="admin",
    responses=_ANSWERS,
    params=(
        *_SCOPE,
        api.query(
            "segments",
            _POSITIONS,
            "Comma-separated segments of the full-sync tree (0 to 65535), as many as fit a URL.",
        ),
        api.query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": DEFAULT_MAX_KEYS},
            "At most this many keys, first in key order (complete is false if cut).",
        ),
    ),
)
