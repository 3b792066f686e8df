"""The Riak-shaped HTTP object API: /types/T/buckets/B/keys/K and /buckets/B/keys/K.

Each method answers as Riak's riak_kv_wm_object does (header rules live in
riakheaders.py):

- GET reads with r/pr/notfound_ok/basic_quorum. One sibling is 200 with its
  value and metadata headers; several are 300, a text list of vtags or (when
  Accept prefers it) multipart/mixed with one part per sibling, tombstones
  included and marked X-Riak-Deleted. ?vtag= picks one sibling.
- PUT and POST need a Content-Type; Link, X-Riak-Index-* and X-Riak-Meta-*
  headers become the stored content's links, indexes and user metadata. Without
  returnbody a PUT is 204; POST to .../keys makes up a key and is 201 with a
  Location.
- DELETE reads first (404 for a missing key, as in Riak) and writes a tombstone
  over what it read, or over the client's X-Riak-Vclock.
- If-Match, If-None-Match, If-Modified-Since and If-Unmodified-Since are checked
  against the object as read, in webmachine's order (304 or 412). A conditional
  write reads first, with the request's r, and when the client sent no
  X-Riak-Vclock writes over the context it read, so it replaces exactly what
  the precondition was checked against.

Input is checked before anything is read or written: a bad parameter or header
is a 400 (or 404 for an unknown bucket type, 413, 415) and changes nothing.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote

from aiohttp import web
from multidict import CIMultiDict

from .. import counter
from .. import object as riak_object
from ..config import ClusterConfig
from ..dvv import DVVSet
from ..node.coordinator import BKey, Coordinator, PutOk
from ..object import CodecError, Content
from ..props import BucketProps
from ..quorum import Failed, Found, GetOptions, NotFound, PutOptions
from . import api, openapi
from .request import (
    HttpError,
    check_params,
    delete_options,
    flag,
    get_options,
    path_names,
    put_options,
    refusing,
    shown,
)
from .riakheaders import (
    DELETED,
    Conditions,
    Refusal,
    Version,
    check_conditions,
    content_headers,
    http_date,
    multipart_body,
    parse_content_type,
    parse_indexes,
    parse_links,
    parse_meta,
    prefers_multipart,
    sibling_etag,
)

VCLOCK = "X-Riak-Vclock"


def _text(status: int, body: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=body.rstrip("\n") + "\n", headers=headers)


# ------------------------------------------------------------------ request parsing


@dataclass(frozen=True)
class Target:
    """The bucket type, bucket and key a request names, URL-decoded as Riak decodes them."""

    bucket_type: str
    bucket: str
    key: str

    @property
    def bkey(self) -> BKey:
        return BKey(self.bucket_type.encode(), self.bucket.encode(), self.key.encode())

    @property
    def location(self) -> str:
        prefix = "" if self.bucket_type == "default" else f"/types/{quote(self.bucket_type, '')}"
        return f"{prefix}/buckets/{quote(self.bucket, '')}/keys/{quote(self.key, '')}"


def _target(request: web.Request, new_key: str | None = None) -> Target:
    names = path_names(request)
    key = new_key if new_key is not None else names["key"]
    return Target(names.get("type", "default"), names["bucket"], key)


def _client_context(request: web.Request) -> dict[str, int] | None:
    raw = request.headers.get(VCLOCK)
    if raw is None or raw.strip() == "":
        return None
    try:
        return riak_object.decode_context(raw.strip())
    except CodecError as exc:
        raise HttpError(400, str(exc)) from None


# ------------------------------------------------------------------ what a response shows


@dataclass(frozen=True)
class View:
    """An object as one response shows it: every sibling, or the one it answers with."""

    contents: list[Content]  # tombstones included: Riak lists them as siblings
    chosen: Content | None  # None when the answer is the 300 of several siblings
    vclock: str

    @classmethod
    def of(cls, obj: DVVSet, vtag: str | None = None) -> View | None:
        """The view of `obj`, narrowed to the sibling ?vtag= names; None if none has it."""
        contents = riak_object.contents(obj)
        vclock = riak_object.encode_context(riak_object.context(obj))
        if vtag is not None:
            chosen = next((c for c in contents if c.vtag == vtag), None)
            return None if chosen is None else cls(contents, chosen, vclock)
        return cls(contents, contents[0] if len(contents) == 1 else None, vclock)

    @property
    def last_modified_us(self) -> int:
        if self.chosen is not None:
            return self.chosen.last_modified_us
        return max(c.last_modified_us for c in self.contents)

    @property
    def version(self) -> Version:
        etag = self.chosen.vtag if self.chosen is not None else sibling_etag(self.vclock)
        return Version(etag, self.last_modified_us // 1_000_000)


async def _render(
    request: web.Request, view: View, bucket: str, *, created: bool = False
) -> web.Response:
    """200 (201 when created) with the chosen sibling, or 300 (201) listing every sibling."""
    if view.chosen is not None:
        headers = CIMultiDict(content_headers(view.chosen, bucket))
        headers[VCLOCK] = view.vclock
        return web.Response(status=201 if created else 200, body=view.chosen.value, headers=headers)
    status = 201 if created else 300
    headers = CIMultiDict(
        {
            VCLOCK: view.vclock,
            "ETag": f'"{view.version.etag}"',
            "Last-Modified": http_date(view.last_modified_us),
        }
    )
    if prefers_multipart(request.headers.get("Accept")):
        headers["Content-Type"], body = await multipart_body(view.contents, bucket)
        return web.Response(status=status, body=body, headers=headers)
    listing = "Siblings:\n" + "".join(f"{c.vtag}\n" for c in view.contents)
    return _text(status, listing, headers)


def _refused(refusal: Refusal, current: Version | None) -> web.Response:
    if refusal.status == 304:
        # As webmachine: no body, but the ETag the client can cache against.
        etag = {"ETag": f'"{current.etag}"'} if current is not None else {}
        return web.Response(status=304, headers=etag)
    return _text(refusal.status, refusal.reason)


def _tombstone(result: NotFound) -> DVVSet | None:
    """The tombstone a not-found read merged, if the replicas held one."""
    return result.obj


def _not_found(result: NotFound) -> web.Response:
    tombstone = _tombstone(result)
    if tombstone is None:
        return _text(404, "not found")
    # As Riak with deletedvclock: the tombstone's context, so a client can write over it.
    vclock = riak_object.encode_context(riak_object.context(tombstone))
    return _text(404, "not found", {VCLOCK: vclock, DELETED: "true"})


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

    def _props(self, target: Target) -> BucketProps:
        props = self._props_of(target.bucket_type, target.bucket)
        if props is None:
            # Riak's answer for a type that does not exist or is not active.
            raise HttpError(404, f"Unknown bucket type: {target.bucket_type}")
        return props

    def _now_s(self) -> int:
        return self._now_us() // 1_000_000

    def _get_options(self, query: Mapping[str, str], props: BucketProps) -> GetOptions:
        return get_options(query, props, self.config.request_timeout_ms)

    def _put_options(self, query: Mapping[str, str], props: BucketProps) -> PutOptions:
        return put_options(query, props, self.config.request_timeout_ms)

    # -------------------------------------------------------------- GET

    @refusing()
    async def get(self, request: web.Request) -> web.StreamResponse:
        target = _target(request)
        check_params(request.query, write=False)
        props = self._props(target)
        result = await self.coordinator.get(
            target.bkey, props, self._get_options(request.query, props)
        )
        if isinstance(result, Failed):
            return _text(503, result.reason)
        if isinstance(result, NotFound):
            return _not_found(result)
        vtag = request.query.get("vtag")
        view = View.of(result.obj, vtag)
        if view is None:
            return _text(404, f"not found: no sibling has vtag {shown(vtag or '')}")
        refusal = check_conditions(
            Conditions.of(request.headers), view.version, method=request.method, now=self._now_s()
        )
        if refusal is not None:
            return _refused(refusal, view.version)
        return await _render(request, view, target.bucket)

    # -------------------------------------------------------------- PUT / POST

    @refusing()
    async def put(self, request: web.Request) -> web.StreamResponse:
        return await self._store(request, _target(request), created=False)

    @refusing()
    async def post_new(self, request: web.Request) -> web.StreamResponse:
        return await self._store(request, _target(request, self._new_key()), created=True)

    async def _body(self, request: web.Request) -> bytes:
        declared = request.content_length
        limit = self.config.max_object_size
        if declared is not None and declared > limit:
            raise HttpError(413, f"value of {declared} bytes exceeds max_object_size {limit}")
        body = await request.read()
        if len(body) > limit:
            raise HttpError(413, f"value of {len(body)} bytes exceeds max_object_size {limit}")
        return body

    async def _store(
        self, request: web.Request, target: Target, created: bool
    ) -> web.StreamResponse:
        query, headers = request.query, request.headers
        # In riak_kv_wm_object's order: content type, parameters, links, indexes.
        content_type = parse_content_type(headers.get("Content-Type"))
        if content_type.split(";")[0].lower() == counter.INCREMENT:
            # The coordinating vnode would apply it as a counter increment, not store it.
            raise HttpError(415, f"Content-Type {counter.INCREMENT} is reserved for counters")
        check_params(query, write=True)
        returnbody = flag(query, "returnbody")
        links = parse_links(headers.getall("Link", []), target.bucket)
        indexes = parse_indexes(headers.items())
        meta = parse_meta(headers.items())
        context = _client_context(request)
        props = self._props(target)
        put_opts = self._put_options(query, props)
        read_opts = self._get_options(query, props)
        body = await self._body(request)

        conditions = Conditions.of(headers)
        current: Version | None = None
        if conditions.any() and not created:
            found = await self.coordinator.get(target.bkey, props, read_opts)
            if isinstance(found, Failed):
                return _text(503, found.reason)
            read = found.obj if isinstance(found, Found) else _tombstone(found)
            if isinstance(found, Found):
                current = View.of(found.obj).version
            if context is None and read is not None:
                # Write over exactly what the precondition was checked against.
                context = riak_object.context(read)
        # A made-up key never exists: only If-Match can refuse it (with 412).
        refusal = check_conditions(conditions, current, method=request.method, now=self._now_s())
        if refusal is not None:
            return _refused(refusal, current)

        content = Content(
            value=body,
            content_type=content_type,
            last_modified_us=self._now_us(),
            meta=meta,
            indexes=indexes,
            links=links,
        )
        result = await self.coordinator.put(target.bkey, props, context or {}, content, put_opts)
        if isinstance(result, Failed):
            return _text(503, result.reason)
        assert isinstance(result, PutOk)
        if returnbody:
            view = View.of(result.obj)
            assert view is not None
            response = await _render(request, view, target.bucket, created=created)
        else:
            response = web.Response(status=201 if created else 204)
            response.headers[VCLOCK] = riak_object.encode_context(riak_object.context(result.obj))
        if created:
            response.headers["Location"] = target.location
        return response

    # -------------------------------------------------------------- DELETE

    @refusing()
    async def delete(self, request: web.Request) -> web.StreamResponse:
        target = _target(request)
        query = request.query
        check_params(query, write=True)
        context = _client_context(request)
        props = self._props(target)
        read_opts, put_opts = delete_options(query, props, self.config.request_timeout_ms)
        # Riak reads before it deletes: a missing key is a 404, and preconditions apply.
        found = await self.coordinator.get(target.bkey, props, read_opts)
        if isinstance(found, Failed):
            return _text(503, found.reason)
        if isinstance(found, NotFound):
            return _not_found(found)
        view = View.of(found.obj, query.get("vtag"))
        if view is None:
            return _text(404, f"not found: no sibling has vtag {shown(query.get('vtag') or '')}")
        refusal = check_conditions(
            Conditions.of(request.headers), view.version, method="DELETE", now=self._now_s()
        )
        if refusal is not None:
            return _refused(refusal, view.version)
        if context is None:
            context = riak_object.context(found.obj)
        result = await self.coordinator.delete(target.bkey, props, context, put_opts)
        if isinstance(result, Failed):
            return _text(503, result.reason)
        return web.Response(status=204)

    def routes(self) -> list[api.Route]:
        table: list[api.Route] = []
        for prefix in ("/types/{type}/buckets/{bucket}", "/buckets/{bucket}"):
            obj = prefix + "/keys/{key}"
            table += [
                api.get(obj, self.get, _FETCH),
                api.put(obj, self.put, _STORE),
                api.post(obj, self.put, _STORE_BY_POST),
                api.delete(obj, self.delete, _DELETE),
                api.post(prefix + "/keys", self.post_new, _STORE_NEW),
            ]
        return table


# ------------------------------------------------------------------ OpenAPI descriptions

_VALUE = {"type": "string", "format": "binary"}
_OBJECT_BODY = {
    "required": True,
    "description": "The value, stored as given under its Content-Type.",
    "content": {"*/*": {"schema": _VALUE}},
}
_STORED = {
    "200": api.text("Stored; the body is the object (returnbody=true)."),
    "300": api.text("Stored, and siblings exist (returnbody=true)."),
    "304": {"description": "Not modified (If-Modified-Since): nothing was written."},
    "400": api.response("BadRequest"),
    "404": api.text("Unknown bucket type."),
    "412": api.response("PreconditionFailed"),
    "413": api.text("The value exceeds max_object_size."),
    "415": api.text("Content-Type is not a media type, or is reserved for counters."),
    "503": api.response("Unavailable"),
}
_FETCH = api.Operation(
    permission="get",
    summary="Fetch an object",
    tag="objects",
    responses={
        "200": {
            "description": "The value, with ETag, Last-Modified, X-Riak-Vclock, "
            "X-Riak-Meta-*, X-Riak-Index-* and Link headers.",
            "content": {"*/*": {"schema": _VALUE}},
        },
        "300": api.text("Siblings: their vtags (or multipart/mixed when accepted)."),
        "304": {"description": "Not modified (If-None-Match / If-Modified-Since)."},
        "400": api.response("BadRequest"),
        "404": api.response("NotFound"),
        "503": api.response("Unavailable"),
    },
    params=(
        *openapi.READ_QUORUM,
        *("vtag", "accept_siblings", "if_none_match", "if_modified_since"),
    ),
)
_STORE = api.Operation(
    permission="put",
    summary="Store an object under its key",
    tag="objects",
    responses={**_STORED, "204": api.response("NoContent")},
    params=(*openapi.WRITE_PARAMS, *openapi.WRITE_HEADERS),
    body=_OBJECT_BODY,
)
_STORE_BY_POST = replace(_STORE, summary="Store an object under its key (same as PUT)")
_STORE_NEW = replace(
    _STORE,
    summary="Store an object under a new key chosen by the server",
    responses={**_STORED, "201": api.text("Created; the Location header names the new key.")},
)
_DELETE = api.Operation(
    permission="delete",
    summary="Delete an object (writes a tombstone)",
    tag="objects",
    responses={
        "204": api.response("NoContent"),
        "304": {"description": "Not modified (If-Modified-Since): nothing was deleted."},
        "400": api.response("BadRequest"),
        "404": api.response("NotFound"),
        "412": api.response("PreconditionFailed"),
        "503": api.response("Unavailable"),
    },
    params=(
        *("rw", *openapi.READ_QUORUM, "w", "dw", "pw", "node_confirms", "vtag", "vclock"),
        *("if_match", "if_none_match", "if_modified_since", "if_unmodified_since"),
    ),
)
