"""Riak's coverage resources over HTTP: 2i queries, key and bucket listing, legacy counters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from aiohttp import MultipartWriter, web

from .. import counter
from .. import object as riak_object
from ..config import ClusterConfig
from ..index import (
    SPECIAL,
    Query,
    decode_continuation,
    encode_continuation,
    is_int_field,
    merge_results,
    parse_term,
)
from ..node.coordinator import BKey, Coordinator, PutOk
from ..node.coverage import CoverageFailed
from ..props import BucketProps
from ..quorum import Failed, NotFound
from . import api, openapi
from .request import (
    HttpError,
    flag,
    get_options,
    listing,
    path_names,
    put_options,
    refusing,
    timeout,
)


def _text(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body.rstrip("\n") + "\n")


MAX_RESULTS = 1_000_000


def _decimal(text: str) -> bool:
    # str.isdigit() also accepts digits such as "²" that int() refuses.
    return text.isascii() and text.isdigit()


def _decode_key(key: bytes) -> str:
    return key.decode(errors="replace")


class QueryHandlers:
    def __init__(
        self,
        config: ClusterConfig,
        coordinator: Coordinator,
        now_us: Callable[[], int],
        props_of: Callable[[str, str], BucketProps | None] | None = None,
    ) -> None:
        self.config = config
        self.coordinator = coordinator
        self._now_us = now_us
        self._props_of = props_of or (lambda type_name, bucket: config.bucket_type(type_name))

    # -------------------------------------------------------------- helpers

    def _props(self, request: web.Request, bucket: str = "") -> BucketProps:
        type_name = path_names(request).get("type", "default")
        props = self._props_of(type_name, bucket)
        if props is None:
            raise HttpError(404, f"Unknown bucket type: {type_name}")
        return props

    def _timeout(self, request: web.Request) -> float:
        return timeout(request.query, self.config.request_timeout_ms)

    async def _collect(self, kind: str, args: list, n_val: int, timeout: float, **kw) -> list:
        parts = []
        try:
            async with asyncio.timeout(timeout):
                async for part in self.coordinator.coverage.run(kind, args, n_val, timeout, **kw):
                    parts.append(part)
        except CoverageFailed as exc:
            raise HttpError(503, str(exc)) from None
        except TimeoutError:
            raise HttpError(503, f"coverage query timed out after {timeout:g}s") from None
        return parts

    # -------------------------------------------------------------- 2i

    def _query(self, request: web.Request) -> tuple[Query, bool]:
        info = path_names(request)
        field = info["field"]
        if field not in SPECIAL:
            field = field.lower()
        start_raw = info["start"]
        end_raw = info.get("end")
        is_range = end_raw is not None
        if field == "$bucket" and is_range:
            raise HttpError(400, "$bucket takes one value (the bucket), not a range")
        max_raw = request.query.get("max_results")
        if max_raw is not None and not (_decimal(max_raw) and 0 < int(max_raw) <= MAX_RESULTS):
            raise HttpError(
                400, f"max_results={max_raw!r}: expected a positive integer up to {MAX_RESULTS}"
            )
        regex = request.query.get("term_regex")
        if regex is not None and (not is_range or is_int_field(field)):
            raise HttpError(
                400, "term_regex is only allowed on range queries over _bin indexes or $key"
            )
        start = parse_term(field, start_raw)
        end = parse_term(field, end_raw) if is_range else start
        cont_raw = request.query.get("continuation")
        continuation = decode_continuation(cont_raw, field) if cont_raw else None
        q = Query(
            info.get("type", "default").encode(),
            info["bucket"].encode(),
            field,
            start,
            end,
            return_terms=flag(request.query, "return_terms") and is_range,
            max_results=int(max_raw) if max_raw is not None else None,
            continuation=continuation,
            term_regex=regex,
        )
        return q, flag(request.query, "stream")

    @refusing()
    async def index(self, request: web.Request) -> web.StreamResponse:
        q, stream = self._query(request)
        props = self._props(request, path_names(request)["bucket"])
        timeout = self._timeout(request)
        if stream and q.max_results is None:
            return await self._stream_index(request, q, props.n_val, timeout)
        parts = await self._collect("index", q.to_wire(), props.n_val, timeout)
        results, cut = merge_results(q, parts)
        body = self._index_body(q, results)
        if cut and results:
            body["continuation"] = encode_continuation(results[-1])
        if not stream:
            return web.json_response(body)
        out = _Multipart()
        await out.start(request)
        await out.part({k: v for k, v in body.items() if k != "continuation"})
        if "continuation" in body:
            await out.part({"continuation": body["continuation"]})
        return await out.close()

    @staticmethod
    def _index_body(q: Query, results: list) -> dict:
        if q.return_terms:
            return {"results": [{str(t): _decode_key(k)} for t, k in results]}
        keys: list[str] = []
        seen = set()
        for _, k in results:
            if k not in seen:  # a key may match a range under several terms
                seen.add(k)
                keys.append(_decode_key(k))
        return {"keys": keys}

    async def _stream_index(
        self, request: web.Request, q: Query, n_val: int, timeout: float
    ) -> web.StreamResponse:
        out = _Multipart()
        await out.start(request)
        try:
            async with asyncio.timeout(timeout):
                async for part in self.coordinator.coverage.run(
                    "index", q.to_wire(), n_val, timeout
                ):
                    results, _ = merge_results(q, [part])
                    if results:
                        await out.part(self._index_body(q, results))
        except (CoverageFailed, TimeoutError) as exc:
            await out.part({"error": str(exc) or "timeout"})
        return await out.close()

    # -------------------------------------------------------------- listing

    @refusing()
    async def keys(self, request: web.Request) -> web.StreamResponse:
        mode = listing(request.query, "keys")
        names = path_names(request)
        bucket = names["bucket"]
        props = self._props(request, bucket)
        q = Query(names.get("type", "default").encode(), bucket.encode(), "$bucket", "", "")
        timeout = self._timeout(request)
        if mode == "true":
            parts = await self._collect("index", q.to_wire(), props.n_val, timeout)
            keys = sorted({bytes(k) for part in parts for _, k in part})
            return web.json_response({"keys": [_decode_key(k) for k in keys]})
        answers = self.coordinator.coverage.run("index", q.to_wire(), props.n_val, timeout)
        return await self._stream_json(
            request, "keys", answers, timeout, lambda part: [_decode_key(k) for _, k in part]
        )

    @refusing()
    async def buckets(self, request: web.Request) -> web.StreamResponse:
        mode = listing(request.query, "buckets")
        type_name = path_names(request).get("type", "default")
        props = self._props(request)
        timeout = self._timeout(request)
        args = [type_name.encode()]
        if mode == "true":
            parts = await self._collect("buckets", args, props.n_val, timeout, every_vnode=True)
            names = sorted({bytes(b) for part in parts for b in part})
            return web.json_response({"buckets": [_decode_key(b) for b in names]})
        answers = self.coordinator.coverage.run(
            "buckets", args, props.n_val, timeout, every_vnode=True
        )
        seen: set[bytes] = set()

        def fresh(part: list) -> list[str]:
            new = [bytes(b) for b in part if bytes(b) not in seen]
            seen.update(new)
            return [_decode_key(b) for b in new]

        return await self._stream_json(request, "buckets", answers, timeout, fresh)

    async def _stream_json(
        self,
        request: web.Request,
        field: str,
        answers: AsyncIterator[list],
        timeout: float,
        convert: Callable[[list], list],
    ) -> web.StreamResponse:
        """Riak's streamed listing: one JSON object per chunk, {"keys": [...]} after another."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async with asyncio.timeout(timeout):
                async for part in answers:
                    items = convert(part)
                    if items:
                        await response.write(json.dumps({field: items}).encode())
        except (CoverageFailed, TimeoutError) as exc:
            await response.write(json.dumps({"error": str(exc) or "timeout"}).encode())
        await response.write(json.dumps({field: []}).encode())
        await response.write_eof()
        return response

    # -------------------------------------------------------------- counters

    def _counter_props(self, request: web.Request) -> tuple[BKey, BucketProps]:
        names = path_names(request)
        bucket = names["bucket"]
        props = self._props(request, bucket)
        if not props.allow_mult:
            raise HttpError(409, "Counters require bucket property 'allow_mult=true'")
        bkey = BKey(b"default", bucket.encode(), names["key"].encode())
        return bkey, props

    @refusing()
    async def counter_get(self, request: web.Request) -> web.StreamResponse:
        bkey, props = self._counter_props(request)
        opts = get_options(request.query, props, self.config.request_timeout_ms)
        result = await self.coordinator.get(bkey, props, opts)
        if isinstance(result, Failed):
            return _text(503, result.reason)
        if isinstance(result, NotFound) or not riak_object.live_contents(result.obj):
            return _text(404, "not found")
        try:
            value = counter.value_of(riak_object.live_contents(result.obj))
        except counter.CounterError as exc:
            return _text(409, f"{exc}: the key does not hold a counter")
        return web.Response(text=str(value), content_type="text/plain")

    @refusing()
    async def counter_update(self, request: web.Request) -> web.StreamResponse:
        bkey, props = self._counter_props(request)
        body = await request.read()
        try:
            delta = counter.parse_delta(body)
        except counter.CounterError as exc:
            raise HttpError(400, str(exc)) from None
        opts = put_options(request.query, props, self.config.request_timeout_ms)
        op = counter.increment_op(delta, self._now_us())
        result = await self.coordinator.put(bkey, props, {}, op, opts)
        if isinstance(result, Failed):
            return _text(503, result.reason)
        assert isinstance(result, PutOk)
        if flag(request.query, "returnvalue"):
            try:
                value = counter.value_of(riak_object.live_contents(result.obj))
            except counter.CounterError as exc:
                return _text(409, f"{exc}: the key does not hold a counter")
            return web.Response(text=str(value), content_type="text/plain")
        return web.Response(status=204)

    # -------------------------------------------------------------- routes

    def routes(self) -> list[api.Route]:
        table = []
        for prefix in ("/types/{type}/buckets/{bucket}", "/buckets/{bucket}"):
            table += [
                api.get(prefix + "/index/{field}/{start}", self.index, _INDEX_MATCH),
                api.get(prefix + "/index/{field}/{start}/{end}", self.index, _INDEX_RANGE),
                api.get(prefix + "/keys", self.keys, _LIST_KEYS),
            ]
        table += [
            api.get("/buckets", self.buckets, _LIST_BUCKETS),
            api.get("/types/{type}/buckets", self.buckets, _LIST_BUCKETS),
            api.get("/buckets/{bucket}/counters/{key}", self.counter_get, _COUNTER_GET),
            api.post("/buckets/{bucket}/counters/{key}", self.counter_update, _COUNTER_UPDATE),
        ]
        return table


# ------------------------------------------------------------------ multipart streaming


class _Multipart:
    """A streamed multipart/mixed body of JSON parts, as Riak streams 2i results.

    aiohttp's MultipartWriter writes each part as it comes (without the closing
    delimiter), and an empty one writes the close. The body opens with a line
    break, as Riak's does, for the Riak clients that look for one before each
    delimiter.
    """

    def __init__(self) -> None:
        self._boundary = MultipartWriter("mixed").boundary
        self.response = web.StreamResponse(headers={"Content-Type": self._writer().content_type})
        self.response.enable_chunked_encoding()

    def _writer(self) -> MultipartWriter:
        return MultipartWriter("mixed", boundary=self._boundary)

    async def start(self, request: web.Request) -> None:
        await self.response.prepare(request)
        await self.response.write(b"\r\n")

    async def part(self, body: dict) -> None:
        writer = self._writer()
        writer.append_json(body)
        await writer.write(self.response, close_boundary=False)

    async def close(self) -> web.StreamResponse:
        await self._writer().write(self.response)
        await self.response.write_eof()
        return self.response


# ------------------------------------------------------------------ OpenAPI descriptions

_ERRORS = {
    "400": api.response("BadRequest"),
    "404": api.response("NotFound"),
    "503": api.response("Unavailable"),
}
_INDEX_PARAMS = (
    "timeout",
    api.query("return_terms", api.BOOL, "Return [{term: key}] results instead of keys."),
    api.query("max_results", {"type": "integer", "minimum": 1}, "Page size."),
    api.query("continuation", {"type": "string"}, "Opaque token from the previous page."),
    api.query("stream", api.BOOL, "Send results in chunks as they are found."),
    api.query("term_regex", {"type": "string"}, "Keep only terms matching this regex."),
    api.query("pagination_sort", api.BOOL, "Sort results (always true when paginating)."),
)
_INDEX_ANSWER = {
    "200": api.json_answer(api.schema("IndexResult"), "Matching keys (or terms and keys)."),
    **_ERRORS,
}
_INDEX_MATCH = api.Operation(
    permission="index",
    summary="Secondary index: keys whose index equals the value",
    tag="2i",
    responses=_INDEX_ANSWER,
    params=_INDEX_PARAMS,
)
_INDEX_RANGE = replace(
    _INDEX_MATCH, summary="Secondary index: keys whose index lies in [start, end]"
)


def _listing(summary: str, what: str, answer: str) -> api.Operation:
    """Listing `what` (keys or buckets): one JSON answer, or chunks of them when streaming."""
    return api.Operation(
        permission="list",
        summary=summary,
        tag="listing",
        responses={
            "200": api.json_answer(
                api.schema(answer), f"The {what}, or chunks of them when streaming."
            ),
            **_ERRORS,
        },
        params=(
            "timeout",
            api.query(
                what,
                {"type": "string", "enum": ["true", "stream"]},
                f"true: one JSON answer; stream: chunked {{{what}: [...]}} objects.",
                required=True,
            ),
        ),
    )


_LIST_KEYS = _listing(
    "List the keys of a bucket (expensive: scans every partition)", "keys", "KeyList"
)
_LIST_BUCKETS = _listing("List buckets (expensive: scans every partition)", "buckets", "BucketList")

# Riak's legacy counters exist for the default type only.
_COUNTER_GET = api.Operation(
    permission="get",
    summary="Value of a legacy counter (the bucket needs allow_mult=true)",
    tag="counters",
    responses={"200": api.text("The counter, a decimal integer."), **_ERRORS},
    params=openapi.READ_QUORUM,
)
_COUNTER_UPDATE = api.Operation(
    permission="put",
    summary="Add to a counter (the body is an integer, may be negative)",
    tag="counters",
    responses={
        "200": api.text("The new value (returnvalue=true)."),
        "204": api.response("NoContent"),
        **_ERRORS,
    },
    params=(
        *("w", "dw", "pw", "node_confirms", "timeout"),
        api.query("returnvalue", api.BOOL, "Answer 200 with the new value."),
    ),
    body={
        "required": True,
        "content": {"text/plain": {"schema": {"type": "string", "pattern": "^-?[0-9]+$"}}},
    },
)
