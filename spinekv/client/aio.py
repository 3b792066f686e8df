"""AsyncClient: spinekv's Riak HTTP API over one pooled aiohttp session, failing over nodes."""

from __future__ import annotations

import contextlib
import json
import logging
import ssl as ssl_module
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from ..config import load_config
from ..security.tls import client_context
from . import codec, multipart
from .bucket import Bucket
from .errors import (
    NotFound,
    RequestTimeout,
    ServerError,
    Unreachable,
    error_for,
)
from .nodes import NodePool
from .objects import IndexPage, Obj, PreflistEntry, Resolver, Sibling, apply_resolver

log = logging.getLogger("spinekv.client")

Quorum = int | str  # a number, or "one" | "quorum" | "all" | "default"
Value = bytes | str | dict | list

# Connection failures where the request never reached the server: safe to send elsewhere.
_NOT_SENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    *((aiohttp.ConnectionTimeoutError,) if hasattr(aiohttp, "ConnectionTimeoutError") else ()),
)
# Failures after the request may have reached the server: resent only when idempotent.
_MAYBE_SENT = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientResponseError,
    TimeoutError,
)
_ACCEPT_SIBLINGS = "multipart/mixed, */*;q=0.5"


@dataclass
class _Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    node: str
    parts: list[multipart.Part] = field(default_factory=list)  # of a 300 with siblings

    @property
    def reason(self) -> str:
        return self.body.decode("utf-8", "replace").strip()

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise ServerError(f"{self.node} answered {self.status} with invalid JSON") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _no_answer(attempts: list[tuple[str, str]], *, maybe_applied: bool = False) -> Unreachable:
    detail = "; ".join(f"{node}: {what}" for node, what in attempts)
    if maybe_applied:
        detail += " (the request may have been applied: it is not safe to resend)"
    if attempts and all(what == "timed out" for _, what in attempts):
        return RequestTimeout(f"no answer in time from {detail}", attempts)
    return Unreachable(f"no node answered: {detail}", attempts)


def _new_sibling(
    value: Value,
    content_type: str | None,
    charset: str | None,
    meta: Mapping[str, str] | None,
    indexes: Any,
    links: Any,
) -> Sibling:
    if isinstance(value, dict | list):
        data, default_type, default_charset = json.dumps(value).encode(), "application/json", None
    elif isinstance(value, str):
        data, default_type, default_charset = value.encode(), "text/plain", "utf-8"
    else:
        data, default_type, default_charset = bytes(value), "application/octet-stream", None
    return Sibling(
        value=data,
        content_type=content_type or default_type,
        charset=charset if charset is not None or content_type else default_charset,
        meta=dict(meta or {}),
        indexes=set(indexes or ()),
        links=list(links or ()),
    )


def config_arguments(path: str | Path, options: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """A client's nodes and options for the cluster.toml at `path`: its members' URLs, and
    (with [tls], unless the caller chose) an SSLContext trusting the cluster CA only."""
    config = load_config(path)
    urls = [config.http_url(name) for name in config.members()]
    if config.tls is not None and "ca" not in options and "ssl" not in options:
        options = {**options, "ssl": client_context(config.tls)}
    return urls, options


class AsyncClient:
    """A client for spinekv (and Riak's HTTP API) on asyncio.

    `nodes` are base URLs such as "http://127.0.0.1:8098". Requests go round-robin
    (or to `prefer` first); when a node refuses the connection, resets it or does
    not answer within `timeout` seconds, the request moves to the next node and the
    failed node is avoided for `avoid_for` seconds. A request moves on after a
    reset or timeout only if resending it is harmless: GET, DELETE and PUT to a key
    are; a POST that makes a new key, a counter increment and a conditional PUT
    (If-None-Match / If-Match) are not, so those raise instead. A PUT that is sent
    twice writes the same value twice: in a bucket with allow_mult the second write
    can show up as an identical sibling, never as a lost write (Riak's clients make
    the same choice). `resolver` is the default sibling resolver.

    For https URLs, `ca` names the CA file the nodes' certificates must chain to (a
    cluster's [tls] ca), or `ssl` is the whole SSLContext to use; without either, the
    system's trusted CAs. `from_config` trusts the cluster's CA by itself.
    """

    def __init__(
        self,
        nodes: Sequence[str] | str,
        *,
        prefer: str | None = None,
        timeout: float = 12.0,
        connect_timeout: float = 2.0,
        avoid_for: float = 5.0,
        pool_size: int = 10,
        resolver: Resolver | None = None,
        ca: str | Path | None = None,
        ssl: ssl_module.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ca is not None and ssl is not None:
            raise ValueError("give ca (a CA file) or ssl (an SSLContext), not both")
        if ca is not None:
            ssl = ssl_module.create_default_context(cafile=str(ca))
        self._ssl = ssl
        urls = [nodes] if isinstance(nodes, str) else list(nodes)
        self._pool = NodePool(
            [u.rstrip("/") for u in urls], prefer.rstrip("/") if prefer else None, avoid_for
        )
        # Just above the server's default 10 s deadline, so its own 503 arrives first.
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.pool_size = pool_size
        self.resolver = resolver
        self._bucket_resolvers: dict[tuple[str, str], Resolver] = {}
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @classmethod
    def from_config(cls, path: str | Path, **options: Any) -> AsyncClient:
        """A client for every member node of a cluster.toml (over HTTPS, trusting its CA,
        when it has a [tls] table)."""
        return cls(*config_arguments(path, options))

    @property
    def nodes(self) -> list[str]:
        return list(self._pool.nodes)

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def bucket(
        self, name: str, bucket_type: str = codec.DEFAULT_TYPE, *, resolver: Resolver | None = None
    ) -> Bucket:
        """A handle on one bucket; `resolver` (if given) becomes that bucket's resolver."""
        handle = Bucket(self, name, bucket_type)
        if resolver is not None:
            handle.resolver = resolver
        return handle

    # ------------------------------------------------------------------ requests

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.pool_size * len(self._pool.nodes),
                limit_per_host=self.pool_size,
                ssl=True if self._ssl is None else self._ssl,
            )
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _deadline(self, server_timeout_ms: int | None) -> float:
        if server_timeout_ms is None:
            return self.timeout
        return max(self.timeout, server_timeout_ms / 1000 + 2.0)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Any = None,
        data: bytes | None = None,
        idempotent: bool = True,
        server_timeout_ms: int | None = None,
        node: str | None = None,
    ) -> _Answer:
        """One request with failover; the answer whatever its status, or Unreachable."""
        timeout = aiohttp.ClientTimeout(
            total=self._deadline(server_timeout_ms), sock_connect=self.connect_timeout
        )
        attempts: list[tuple[str, str]] = []
        order = [node] if node is not None else self._pool.order(self._clock())
        for target in order:
            try:
                async with self._http().request(
                    method,
                    target + path,
                    params=codec.query(params or {}),
                    headers=headers,
                    data=data,
                    timeout=timeout,
                ) as resp:
                    if resp.status == 300 and resp.content_type == "multipart/mixed":
                        parts = [p async for p in multipart.parts(resp.headers, resp.content)]
                        answer = _Answer(resp.status, resp.headers, b"", target, parts)
                    else:
                        answer = _Answer(resp.status, resp.headers, await resp.read(), target)
            except _NOT_SENT as exc:
                self._failed(target, exc, attempts)
            except _MAYBE_SENT as exc:
                self._failed(target, exc, attempts)
                if not idempotent:
                    raise _no_answer(attempts, maybe_applied=True) from None
            else:
                self._pool.succeeded(target)
                return answer
        raise _no_answer(attempts)

    def _failed(self, node: str, exc: BaseException, attempts: list[tuple[str, str]]) -> None:
        attempts.append((node, _describe(exc)))
        self._pool.failed(node, self._clock())
        log.debug("spinekv client: %s failed (%s), trying the next node", node, _describe(exc))

    @contextlib.asynccontextmanager
    async def _stream(
        self, path: str, params: Mapping[str, Any]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET whose body is read as it arrives; fails over only until the headers arrive."""
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.connect_timeout, sock_read=self.timeout
        )
        attempts: list[tuple[str, str]] = []
        for target in self._pool.order(self._clock()):
            try:
                resp = await self._http().get(
                    target + path, params=codec.query(params), timeout=timeout
                )
            except (*_NOT_SENT, *_MAYBE_SENT) as exc:
                self._failed(target, exc, attempts)
                continue
            self._pool.succeeded(target)
            try:
                if resp.status != 200:
                    body = await resp.read()
                    raise error_for(resp.status, body.decode("utf-8", "replace").strip())
                yield resp
            except _MAYBE_SENT as exc:
                broke = RequestTimeout if isinstance(exc, TimeoutError) else Unreachable
                what = f"{target}: stream broke off: {_describe(exc)}"
                raise broke(what, [(target, _describe(exc))]) from None
            finally:
                resp.release()
            return
        raise _no_answer(attempts)

    @staticmethod
    def _check(answer: _Answer, *ok: int) -> _Answer:
        if answer.status not in ok:
            raise error_for(answer.status, answer.reason)
        return answer

    # ------------------------------------------------------------------ objects

    def _resolver_for(
        self, bucket_type: str, bucket: str, given: Resolver | None
    ) -> Resolver | None:
        return given or self._bucket_resolvers.get((bucket_type, bucket)) or self.resolver

    def _fill(self, obj: Obj, answer: _Answer, resolver: Resolver | None) -> Obj:
        """Take the siblings and context an object answer carries into `obj`."""
        if answer.status == 300:
            if not answer.parts:
                raise ServerError(f"{answer.node} answered 300 without multipart/mixed siblings")
            found = [codec.sibling_from(h, body) for h, body in answer.parts]
        elif answer.status == 404:
            found = []
        else:
            found = [codec.sibling_from(answer.headers.items(), answer.body)]
        obj.siblings = [s for s in found if s is not None]
        obj.exists = bool(obj.siblings)
        # A tombstone's context too: writing over it then supersedes the delete.
        obj.context = answer.headers.get(codec.VCLOCK, obj.context)
        chosen = self._resolver_for(obj.bucket_type, obj.bucket, resolver or obj.resolver)
        if len(obj.siblings) > 1 and chosen is not None:
            obj.siblings = [apply_resolver(obj.siblings, chosen)]
        return obj

    async def get(
        self,
        bucket: str,
        key: str,
        *,
        bucket_type: str = codec.DEFAULT_TYPE,
        r: Quorum | None = None,
        pr: Quorum | None = None,
        notfound_ok: bool | None = None,
        basic_quorum: bool | None = None,
        timeout: int | None = None,
        resolver: Resolver | None = None,
    ) -> Obj:
        """Fetch a key. A missing key gives an Obj with exists False (and no siblings).

        With several siblings, the resolver (this call's, else the bucket's, else the
        client's) picks one; without any, they stay on obj.siblings. `timeout` is the
        server's deadline in milliseconds.
        """
        params = {
            "r": r,
            "pr": pr,
            "notfound_ok": notfound_ok,
            "basic_quorum": basic_quorum,
            "timeout": timeout,
        }
        answer = await self._request(
            "GET",
            codec.object_path(bucket_type, bucket, key),
            params=params,
            headers={"Accept": _ACCEPT_SIBLINGS},
            server_timeout_ms=timeout,
        )
        if answer.status == 404 and "bucket type" in answer.reason.lower():
            raise NotFound(answer.reason, 404)
        self._check(answer, 200, 300, 404)
        obj = Obj(bucket, key, bucket_type, client=self, resolver=resolver)
        return self._fill(obj, answer, resolver)

    def new(
        self,
        bucket: str,
        key: str | None = None,
        value: Value = b"",
        *,
        bucket_type: str = codec.DEFAULT_TYPE,
        content_type: str | None = None,
        charset: str | None = None,
        meta: Mapping[str, str] | None = None,
        indexes: Any = None,
        links: Any = None,
        context: str | None = None,
    ) -> Obj:
        """An object not yet stored (no I/O). str values are UTF-8 text, dict/list are JSON.

        `indexes` is an iterable of (name, value) with names ending in _bin or _int;
        `links` of (bucket, key, tag). Without `context` storing it is a blind write.
        """
        sibling = _new_sibling(value, content_type, charset, meta, indexes, links)
        return Obj(bucket, key, bucket_type, [sibling], context, client=self)

    async def put(
        self,
        obj: Obj,
        *,
        w: Quorum | None = None,
        dw: Quorum | None = None,
        pw: Quorum | None = None,
        node_confirms: Quorum | None = None,
        timeout: int | None = None,
        returnbody: bool = True,
        if_none_match: bool | str = False,
        if_match: bool | str | None = None,
        resolver: Resolver | None = None,
    ) -> Obj:
        """Store `obj` with its context, so the write supersedes what was read; returns it.

        With returnbody (the default) `obj` takes the stored siblings and the new
        context, ready for the next read-modify-write; with returnbody=False it
        keeps its old context (fetch again before another write, or the next one
        makes a sibling in allow_mult buckets). if_none_match=True stores only if the
        key does not exist; if_match=True (or an etag) only if it is unchanged. A key
        of None lets the server choose one (obj.key is set).
        """
        sibling = obj._single()
        if sibling is None:
            raise ValueError("the object has no value to store: set obj.value first")
        headers = CIMultiDict(codec.content_headers(sibling))
        headers["Accept"] = _ACCEPT_SIBLINGS
        if obj.context:
            headers[codec.VCLOCK] = obj.context
        conditional = bool(if_none_match) or bool(if_match)
        if if_none_match:
            headers["If-None-Match"] = "*" if if_none_match is True else f'"{if_none_match}"'
        if if_match:
            etag = sibling.etag if if_match is True else if_match
            if etag is None:
                raise ValueError("if_match=True needs an object read from the server")
            headers["If-Match"] = f'"{etag}"'
        params = {
            "w": w,
            "dw": dw,
            "pw": pw,
            "node_confirms": node_confirms,
            "timeout": timeout,
            "returnbody": returnbody,
        }
        # A new key from the server, or a condition, must not be tried twice. Such a
        # write goes as POST (Riak stores a POST to a key like a PUT), which aiohttp
        # never resends by itself either; it does resend a PUT once after a hang-up.
        idempotent = obj.key is not None and not conditional
        answer = await self._request(
            "PUT" if idempotent else "POST",
            codec.object_path(obj.bucket_type, obj.bucket, obj.key),
            params=params,
            headers=headers,
            data=sibling.value,
            idempotent=idempotent,
            server_timeout_ms=timeout,
        )
        self._check(answer, 200, 201, 204, 300)
        if answer.status == 201 and "Location" in answer.headers:
            obj.key = codec.key_from_location(answer.headers["Location"])
        if returnbody and answer.status != 204:
            return self._fill(obj, answer, resolver)
        obj.exists = True
        return obj

    async def store(
        self,
        bucket: str,
        key: str | None,
        value: Value,
        *,
        bucket_type: str = codec.DEFAULT_TYPE,
        content_type: str | None = None,
        charset: str | None = None,
        meta: Mapping[str, str] | None = None,
        indexes: Any = None,
        links: Any = None,
        context: str | None = None,
        **options: Any,
    ) -> Obj:
        """Write a value without reading first (a blind write unless `context` is given).

        Takes put's options (w, dw, pw, returnbody, if_none_match, ...).
        """
        obj = self.new(
            bucket,
            key,
            value,
            bucket_type=bucket_type,
            content_type=content_type,
            charset=charset,
            meta=meta,
            indexes=indexes,
            links=links,
            context=context,
        )
        return await self.put(obj, **options)

    async def delete(
        self,
        bucket: str,
        key: str,
        *,
        bucket_type: str = codec.DEFAULT_TYPE,
        context: str | None = None,
        rw: Quorum | None = None,
        r: Quorum | None = None,
        w: Quorum | None = None,
        pr: Quorum | None = None,
        pw: Quorum | None = None,
        dw: Quorum | None = None,
        timeout: int | None = None,
    ) -> bool:
        """Delete a key (with the context of a read, if given); False if it was not there."""
        params = {"rw": rw, "r": r, "w": w, "pr": pr, "pw": pw, "dw": dw, "timeout": timeout}
        answer = await self._request(
            "DELETE",
            codec.object_path(bucket_type, bucket, key),
            params=params,
            headers={codec.VCLOCK: context} if context else None,
            server_timeout_ms=timeout,
        )
        self._check(answer, 204, 404)
        if answer.status == 404 and "bucket type" in answer.reason.lower():
            raise NotFound(answer.reason, 404)
        return answer.status == 204

    # ------------------------------------------------------------------ secondary indexes

    async def get_index(
        self,
        bucket: str,
        index: str,
        start: str | int | None = None,
        end: str | int | None = None,
        *,
        bucket_type: str = codec.DEFAULT_TYPE,
        return_terms: bool | None = None,
        max_results: int | None = None,
        continuation: str | None = None,
        term_regex: str | None = None,
        timeout: int | None = None,
    ) -> IndexPage:
        """One page of a 2i query: exact (`start` only) or range (`start`..`end`).

        `index` is a name ending in _bin or _int, or "$key" (a key range) or "$bucket"
        (every key). With return_terms the results are (term, key) pairs. With
        max_results the page has a continuation; page.next_page() fetches the next.
        """
        query = {
            "bucket": bucket,
            "index": index,
            "start": start,
            "end": end,
            "bucket_type": bucket_type,
            "return_terms": return_terms,
            "max_results": max_results,
            "term_regex": term_regex,
            "timeout": timeout,
        }
        path, params = self._index_request(query, continuation)
        answer = self._check(
            await self._request("GET", path, params=params, server_timeout_ms=timeout), 200
        )
        data = answer.json()
        return IndexPage(codec.index_results(data, index), data.get("continuation"), self, query)

    @staticmethod
    def _index_request(
        query: Mapping[str, Any], continuation: str | None
    ) -> tuple[str, dict[str, Any]]:
        start = query["start"]
        if start is None:
            if query["index"] != "$bucket":
                raise ValueError(f"index {query['index']!r} needs a start value")
            start = query["bucket"]  # Riak's form: /index/$bucket/BUCKET
        path = codec.index_path(
            query["bucket_type"], query["bucket"], query["index"], start, query["end"]
        )
        params = {
            "return_terms": query["return_terms"],
            "max_results": query["max_results"],
            "term_regex": query["term_regex"],
            "timeout": query["timeout"],
            "continuation": continuation,
        }
        return path, params

    async def iter_index(
        self,
        bucket: str,
        index: str,
        start: str | int | None = None,
        end: str | int | None = None,
        *,
        page_size: int = 1000,
        **options: Any,
    ) -> AsyncIterator[Any]:
        """Every result of a 2i query, fetched `page_size` at a time along the continuations."""
        page = await self.get_index(bucket, index, start, end, max_results=page_size, **options)
        while True:
            for result in page.results:
                yield result
            if page.continuation is None or not page.results:
                return
            page = await page.next_page()

    async def stream_index(
        self,
        bucket: str,
        index: str,
        start: str | int | None = None,
        end: str | int | None = None,
        *,
        bucket_type: str = codec.DEFAULT_TYPE,
        return_terms: bool | None = None,
        term_regex: str | None = None,
        timeout: int | None = None,
    ) -> AsyncIterator[Any]:
        """The results of a 2i query as the server streams them (stream=true, multipart)."""
        query = {
            "bucket": bucket,
            "index": index,
            "start": start,
            "end": end,
            "bucket_type": bucket_type,
            "return_terms": return_terms,
            "max_results": None,
            "term_regex": term_regex,
            "timeout": timeout,
        }
        path, params = self._index_request(query, None)
        async with self._stream(path, {**params, "stream": True}) as resp:
            if resp.content_type != "multipart/mixed":
                raise ServerError("a streamed index answer must be multipart/mixed")
            async for _headers, body in multipart.parts(resp.headers, resp.content):
                for result in self._index_part(body, index):
                    yield result

    @staticmethod
    def _index_part(body: bytes, index: str) -> list[Any]:
        try:
            data = json.loads(body)
        except ValueError:
            raise ServerError(f"a streamed index part is not JSON: {body[:80]!r}") from None
        if "error" in data:
            raise ServerError(str(data["error"]))
        return codec.index_results(data, index) if "keys" in data or "results" in data else []

    # ------------------------------------------------------------------ listing

    async def list_keys(
        self, bucket: str, *, bucket_type: str = codec.DEFAULT_TYPE, timeout: int | None = None
    ) -> list[str]:
        """Every key in a bucket (expensive on a big cluster, as in Riak)."""
        answer = await self._request(
            "GET",
            codec.bucket_path(bucket_type, bucket) + "/keys",
            params={"keys": True, "timeout": timeout},
            server_timeout_ms=timeout,
        )
        return list(self._check(answer, 200).json()["keys"])

    async def stream_keys(
        self, bucket: str, *, bucket_type: str = codec.DEFAULT_TYPE, timeout: int | None = None
    ) -> AsyncIterator[str]:
        """Every key in a bucket, as the server streams them (keys=stream)."""
        path = codec.bucket_path(bucket_type, bucket) + "/keys"
        async for key in self._stream_json(path, {"keys": "stream", "timeout": timeout}, "keys"):
            yield key

    async def list_buckets(
        self, *, bucket_type: str = codec.DEFAULT_TYPE, timeout: int | None = None
    ) -> list[str]:
        """Every bucket holding keys in a bucket type."""
        answer = await self._request(
            "GET",
            codec.buckets_path(bucket_type),
            params={"buckets": True, "timeout": timeout},
            server_timeout_ms=timeout,
        )
        return list(self._check(answer, 200).json()["buckets"])

    async def stream_buckets(
        self, *, bucket_type: str = codec.DEFAULT_TYPE, timeout: int | None = None
    ) -> AsyncIterator[str]:
        path = codec.buckets_path(bucket_type)
        params = {"buckets": "stream", "timeout": timeout}
        async for name in self._stream_json(path, params, "buckets"):
            yield name

    async def _stream_json(
        self, path: str, params: Mapping[str, Any], field: str
    ) -> AsyncIterator[Any]:
        async with self._stream(path, params) as resp:
            objects = codec.JsonStream()
            async for chunk in resp.content.iter_any():
                for item in objects.feed(chunk):
                    if "error" in item:
                        raise ServerError(str(item["error"]))
                    for value in item.get(field, []):
                        yield value
            objects.close()

    # ------------------------------------------------------------------ bucket properties

    async def get_bucket_props(
        self, bucket: str, *, bucket_type: str = codec.DEFAULT_TYPE
    ) -> dict[str, Any]:
        answer = await self._request("GET", codec.bucket_path(bucket_type, bucket) + "/props")
        return dict(self._check(answer, 200).json()["props"])

    async def set_bucket_props(
        self, bucket: str, props: Mapping[str, Any], *, bucket_type: str = codec.DEFAULT_TYPE
    ) -> None:
        await self._put_props(codec.bucket_path(bucket_type, bucket) + "/props", props)

    async def reset_bucket_props(
        self, bucket: str, *, bucket_type: str = codec.DEFAULT_TYPE
    ) -> None:
        """Drop the bucket's own props: it follows its bucket type again."""
        path = codec.bucket_path(bucket_type, bucket) + "/props"
        self._check(await self._request("DELETE", path), 204)

    async def get_type_props(self, bucket_type: str) -> dict[str, Any]:
        answer = await self._request("GET", codec.type_props_path(bucket_type))
        return dict(self._check(answer, 200).json()["props"])

    async def set_type_props(self, bucket_type: str, props: Mapping[str, Any]) -> None:
        await self._put_props(codec.type_props_path(bucket_type), props)

    async def _put_props(self, path: str, props: Mapping[str, Any]) -> None:
        body = json.dumps({"props": dict(props)}).encode()
        answer = await self._request(
            "PUT", path, headers={"Content-Type": "application/json"}, data=body
        )
        self._check(answer, 204)

    # ------------------------------------------------------------------ counters

    async def get_counter(
        self,
        bucket: str,
        key: str,
        *,
        r: Quorum | None = None,
        pr: Quorum | None = None,
        notfound_ok: bool | None = None,
        basic_quorum: bool | None = None,
    ) -> int:
        """A legacy counter's value (/buckets/B/counters/K); 0 if it was never updated."""
        params = {"r": r, "pr": pr, "notfound_ok": notfound_ok, "basic_quorum": basic_quorum}
        answer = await self._request("GET", codec.counter_path(bucket, key), params=params)
        if answer.status == 404:
            return 0
        return _integer(self._check(answer, 200))

    async def update_counter(
        self,
        bucket: str,
        key: str,
        amount: int = 1,
        *,
        w: Quorum | None = None,
        dw: Quorum | None = None,
        pw: Quorum | None = None,
        returnvalue: bool = False,
    ) -> int | None:
        """Add `amount` (may be negative); the new value with returnvalue=True.

        Never resent after a reset or timeout: that could count twice. The bucket
        needs allow_mult=true (else Conflict, as in Riak).
        """
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"a counter changes by an integer, not {amount!r}")
        params = {"w": w, "dw": dw, "pw": pw, "returnvalue": returnvalue}
        answer = await self._request(
            "POST",
            codec.counter_path(bucket, key),
            params=params,
            headers={"Content-Type": "text/plain"},
            data=str(amount).encode(),
            idempotent=False,
        )
        self._check(answer, 200, 204)
        return _integer(answer) if returnvalue else None

    # ------------------------------------------------------------------ service

    async def ping(self, node: str | None = None) -> bool:
        """True when a node (this one, or any with failover) answers /ping with OK."""
        try:
            answer = await self._request("GET", "/ping", node=node and node.rstrip("/"))
        except Unreachable:
            return False
        return answer.status == 200 and answer.reason == "OK"

    async def stats(self, node: str | None = None) -> dict[str, Any]:
        """A node's /stats (this one, or any with failover)."""
        answer = await self._request(
            "GET", "/stats", headers={"Accept": "application/json"}, node=node and node.rstrip("/")
        )
        return dict(self._check(answer, 200).json())

    async def preflist(
        self, bucket: str, key: str, *, bucket_type: str = codec.DEFAULT_TYPE
    ) -> list[PreflistEntry]:
        """The replicas of a key: partition, node, and whether each is a primary."""
        path = codec.object_path(bucket_type, bucket, key) + "/preflist"
        data = self._check(await self._request("GET", path), 200).json()
        try:
            return [
                PreflistEntry(int(e["partition"]), str(e["node"]), bool(e["primary"]))
                for e in data["preflist"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerError(f"unexpected preflist answer: {exc}") from None


def _integer(answer: _Answer) -> int:
    try:
        return int(answer.reason)
    except ValueError:
        raise ServerError(f"{answer.node} answered {answer.reason!r}, not an integer") from None
