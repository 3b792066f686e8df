"""The Riak-shaped HTTP object API: /types/T/buckets/B/keys/K, /buckets/B/keys/K and /ping."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from .. import object as riak_object
from ..config import BucketProps, ClusterConfig
from ..node.coordinator import BKey, Coordinator, GetOptions, PutOk, PutOptions
from ..object import CodecError, Content
from ..quorum import Failed, NotFound, QuorumValueError, resolve

VCLOCK = "X-Riak-Vclock"
META_PREFIX = "x-riak-meta-"


class BadRequest(Exception):
    """Client input that is refused with a 4xx and changes nothing."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _text(status: int, body: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=body.rstrip("\n") + "\n", headers=headers)


# ------------------------------------------------------------------ request parsing


def _bool_param(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise BadRequest(f"{name}={raw!r}: expected true or false")


def _quorum_param(request: web.Request, name: str, props: BucketProps) -> int:
    try:
        return resolve(
            name, request.query.get(name, props.quorum(name)), props.n_val, props.quorum(name)
        )
    except QuorumValueError as exc:
        raise BadRequest(str(exc)) from None


def _timeout(request: web.Request, config: ClusterConfig) -> float:
    raw = request.query.get("timeout")
    if raw is None:
        return config.request_timeout_ms / 1000
    if not raw.isdigit() or int(raw) == 0:
        raise BadRequest(f"timeout={raw!r}: expected a positive number of milliseconds")
    return int(raw) / 1000


def _context(request: web.Request) -> dict[str, int] | None:
    raw = request.headers.get(VCLOCK)
    if raw is None or raw.strip() == "":
        return None
    try:
        return riak_object.decode_context(raw.strip())
    except CodecError as exc:
        raise BadRequest(str(exc)) from None


def _http_date(us: int) -> str:
    return format_datetime(datetime.fromtimestamp(us / 1_000_000, UTC), usegmt=True)


def _content_headers(content: Content) -> dict[str, str]:
    headers = {
        "Content-Type": content.content_type,
        "ETag": f'"{content.vtag}"',
        "Last-Modified": _http_date(content.last_modified_us),
    }
    for name, value in content.meta:
        headers[f"X-Riak-Meta-{name}"] = value
    return headers


# ------------------------------------------------------------------ handlers


class KVHandlers:
    def __init__(
        self,
        config: ClusterConfig,
        coordinator: Coordinator,
        now_us: Callable[[], int],
        new_key: Callable[[], str] | None = None,
        props_of: Callable[[str, str], BucketProps | None] | None = None,
    ) -> None:
        self.config = config
        self.coordinator = coordinator
        self._now_us = now_us
        # (type, bucket) -> the bucket's effective props, or None for an unknown type.
        self._props_of = props_of or (lambda type_name, bucket: config.bucket_type(type_name))
        self._new_key = new_key or (lambda: base64.b32encode(os.urandom(15)).decode().lower())

    def _props(self, request: web.Request) -> BucketProps:
        type_name = request.match_info.get("type", "default")
        props = self._props_of(type_name, request.match_info["bucket"])
        if props is None:
            known = ", ".join(sorted(self.config.bucket_types))
            raise BadRequest(f"unknown bucket type {type_name!r} (known types: {known})")
        return props

    def _bkey(self, request: web.Request, key: str | None = None) -> BKey:
        type_name = request.match_info.get("type", "default")
        return BKey(
            type_name.encode(),
            request.match_info["bucket"].encode(),
            (key if key is not None else request.match_info["key"]).encode(),
        )

    def _get_options(self, request: web.Request, props: BucketProps) -> GetOptions:
        return GetOptions(
            r=_quorum_param(request, "r", props),
            pr=_quorum_param(request, "pr", props),
            notfound_ok=_bool_param(request, "notfound_ok", props.notfound_ok),
            basic_quorum=_bool_param(request, "basic_quorum", props.basic_quorum),
            timeout=_timeout(request, self.config),
        )

    def _put_options(self, request: web.Request, props: BucketProps) -> PutOptions:
        w = _quorum_param(request, "w", props)
        dw = _quorum_param(request, "dw", props)
        pw = _quorum_param(request, "pw", props)
        return PutOptions(
            w=max(w, dw),
            dw=dw,
            pw=pw,
            node_confirms=_quorum_param(request, "node_confirms", props),
            timeout=_timeout(request, self.config),
        )

    @staticmethod
    def guarded(handler: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(self: KVHandlers, request: web.Request) -> web.StreamResponse:
            try:
                return await handler(self, request)
            except BadRequest as exc:
                return _text(exc.status, exc.reason)

        return wrapper

    # -------------------------------------------------------------- GET

    @guarded
    async def get(self, request: web.Request) -> web.StreamResponse:
        props = self._props(request)
        opts = self._get_options(request, props)
        bkey = self._bkey(request)
        result = await self.coordinator.get(bkey, props, opts)
        if isinstance(result, Failed):
            return _text(503, result.reason)
        if isinstance(result, NotFound):
            return _text(404, "not found")
        return self._object_response(request, result.obj, 200)

    def _object_response(self, request: web.Request, obj: Any, status: int) -> web.Response:
        siblings = riak_object.live_contents(obj)
        vclock = riak_object.encode_context(riak_object.context(obj))
        if not siblings:
            return _text(404, "not found", {VCLOCK: vclock})
        vtag = request.query.get("vtag")
        if vtag is not None:
            chosen = [c for c in siblings if c.vtag == vtag]
            if not chosen:
                return _text(404, f"no sibling with vtag {vtag!r}", {VCLOCK: vclock})
            siblings = chosen
        if len(siblings) == 1:
            headers = _content_headers(siblings[0])
            headers[VCLOCK] = vclock
            return web.Response(status=status, body=siblings[0].value, headers=headers)
        if "multipart/mixed" in request.headers.get("Accept", ""):
            return _multipart(siblings, vclock)
        listing = "Siblings:\n" + "".join(f"{c.vtag}\n" for c in siblings)
        return _text(300, listing, {VCLOCK: vclock})

    # -------------------------------------------------------------- PUT / POST

    @guarded
    async def put(self, request: web.Request) -> web.StreamResponse:
        return await self._store(request, self._bkey(request), created=False)

    @guarded
    async def post_new(self, request: web.Request) -> web.StreamResponse:
        return await self._store(request, self._bkey(request, key=self._new_key()), created=True)

    async def _store(self, request: web.Request, bkey: BKey, created: bool) -> web.StreamResponse:
        props = self._props(request)
        opts = self._put_options(request, props)
        returnbody = _bool_param(request, "returnbody", False)
        context = _context(request) or {}
        declared = request.content_length
        limit = self.config.max_object_size
        if declared is not None and declared > limit:
            raise BadRequest(f"value of {declared} bytes exceeds max_object_size {limit}", 413)
        body = await request.read()
        if len(body) > limit:
            raise BadRequest(f"value of {len(body)} bytes exceeds max_object_size {limit}", 413)
        content = Content(
            value=body,
            content_type=request.headers.get("Content-Type", "application/octet-stream"),
            last_modified_us=self._now_us(),
            meta=tuple(
                sorted(
                    (name[len(META_PREFIX) :], value)
                    for name, value in request.headers.items()
                    if name.lower().startswith(META_PREFIX)
                )
            ),
        )
        result = await self.coordinator.put(bkey, props, context, content, opts)
        if isinstance(result, Failed):
            return _text(503, result.reason)
        assert isinstance(result, PutOk)
        headers = {}
        if created:
            prefix = "" if bkey.bucket_type == b"default" else f"/types/{bkey.bucket_type.decode()}"
            headers["Location"] = (
                f"{prefix}/buckets/{bkey.bucket.decode()}/keys/{bkey.key.decode()}"
            )
        if returnbody:
            response = self._object_response(request, result.obj, 201 if created else 200)
            response.headers.update(headers)
            return response
        headers[VCLOCK] = riak_object.encode_context(riak_object.context(result.obj))
        return web.Response(status=201 if created else 204, headers=headers)

    # -------------------------------------------------------------- DELETE

    @guarded
    async def delete(self, request: web.Request) -> web.StreamResponse:
        props = self._props(request)
        rw = _quorum_param(request, "rw", props)
        get_opts = GetOptions(
            r=_quorum_param(request, "r", props) if "r" in request.query else rw,
            pr=_quorum_param(request, "pr", props),
            timeout=_timeout(request, self.config),
        )
        put_opts = self._put_options(request, props)
        if "w" not in request.query:
            put_opts = replace(put_opts, w=max(rw, put_opts.dw))
        result = await self.coordinator.delete(
            self._bkey(request), props, _context(request), get_opts, put_opts
        )
        if isinstance(result, Failed):
            return _text(503, result.reason)
        if isinstance(result, NotFound):
            return _text(404, "not found")
        return web.Response(status=204)

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    def routes(self) -> list[web.RouteDef]:
        table = [web.get("/ping", self.ping)]
        for prefix in ("/types/{type}/buckets/{bucket}", "/buckets/{bucket}"):
            obj = prefix + "/keys/{key}"
            table += [
                web.get(obj, self.get),
                web.put(obj, self.put),
                web.post(obj, self.put),
                web.delete(obj, self.delete),
                web.post(prefix + "/keys", self.post_new),
            ]
        return table


def _multipart(siblings: list[Content], vclock: str) -> web.Response:
    boundary = base64.b32encode(os.urandom(10)).decode().rstrip("=")
    parts = []
    for c in siblings:
        head = "".join(f"{k}: {v}\r\n" for k, v in _content_headers(c).items())
        parts.append(f"\r\n--{boundary}\r\n{head}\r\n".encode() + c.value)
    body = b"".join(parts) + f"\r\n--{boundary}--\r\n".encode()
    return web.Response(
        status=300,
        body=body,
        headers={VCLOCK: vclock, "Content-Type": f"multipart/mixed; boundary={boundary}"},
    )
