"""Bucket props and bucket types over HTTP: Riak's /props resources and the /admin/bucket-types
endpoints that `spinekv admin bucket-type` calls.

Riak's shapes (riak_kv_wm_props, riak_kv_wm_bucket_type): GET answers
{"props": {...}}; PUT takes {"props": {...}} as application/json and answers
204; a bad value is a 400 naming each bad property, and changes nothing; an
unknown or inactive type is a 404. Every change is made on this node's
bucket metadata and gossiped from here (membership.update_buckets).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from .. import buckets
from ..buckets import BucketMeta
from ..config import ClusterConfig
from ..node.membership import Membership
from . import api, openapi
from .request import HttpError, json_answer, path_names, refusing

FORMAT = '{"props":{...bucket properties...}}'

# Every refusal is answered as JSON; the metadata is only changed on success.
_guarded = refusing(json_answer)


async def _props_body(request: web.Request, what: str) -> dict[str, Any]:
    """The {"props": {...}} object of a PUT, or a refusal saying the form it must take."""
    if request.content_type != "application/json":
        reason = f"Content-Type must be application/json, not {request.content_type}"
        raise HttpError(415, reason)
    try:
        body = json.loads(await request.read() or b"null")
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can go
        body = None
    props = body.get("props") if isinstance(body, dict) else None
    if not isinstance(props, dict):
        raise HttpError(400, f"{what} must be a JSON object of the form: {FORMAT}")
    return props


class PropsHandlers:
    def __init__(self, config: ClusterConfig, membership: Membership) -> None:
        self.config = config
        self.membership = membership

    # -------------------------------------------------------------- helpers

    @property
    def _meta(self) -> BucketMeta:
        return self.membership.buckets

    def _now_us(self) -> int:
        return int(self.membership.clock.time() * 1_000_000)

    def _members(self) -> list[str]:
        return self.membership.state.member_names()

    def _change(self, change: Callable[..., BucketMeta], *args: Any) -> None:
        """Make one of buckets.py's changes to this node's metadata, and gossip it."""
        meta = change(self.config, self._meta, *args, self._now_us(), self.membership.me)
        self.membership.update_buckets(meta)

    @staticmethod
    def _type(request: web.Request) -> str:
        return path_names(request).get("type", buckets.DEFAULT_TYPE)

    # -------------------------------------------------------------- bucket props

    @_guarded
    async def get_bucket(self, request: web.Request) -> web.StreamResponse:
        type_name, bucket = self._type(request), path_names(request)["bucket"]
        meta = self._meta
        props = buckets.effective_props(self.config, meta, type_name, bucket)
        if props is None:
            raise HttpError(404, f"unknown bucket type {type_name!r}")
        return web.json_response({"props": buckets.render_bucket(meta, type_name, bucket, props)})

    @_guarded
    async def put_bucket(self, request: web.Request) -> web.StreamResponse:
        type_name, bucket = self._type(request), path_names(request)["bucket"]
        if buckets.type_props(self.config, self._meta, type_name) is None:
            raise HttpError(404, f"unknown bucket type {type_name!r}")
        changes = await _props_body(request, "bucket PUT")
        self._change(buckets.set_bucket_props, type_name, bucket, changes)
        return web.Response(status=204)

    @_guarded
    async def reset_bucket(self, request: web.Request) -> web.StreamResponse:
        type_name, bucket = self._type(request), path_names(request)["bucket"]
        self._change(buckets.reset_bucket_props, type_name, bucket)
        return web.Response(status=204)

    # -------------------------------------------------------------- type props

    @_guarded
    async def get_type(self, request: web.Request) -> web.StreamResponse:
        type_name = self._type(request)
        meta = self._meta
        props = buckets.type_props(self.config, meta, type_name)
        if props is None:
            raise HttpError(404, f"unknown bucket type {type_name!r}")
        return web.json_response({"props": buckets.render_type(meta, type_name, props)})

    @_guarded
    async def put_type(self, request: web.Request) -> web.StreamResponse:
        type_name = self._type(request)
        if buckets.type_props(self.config, self._meta, type_name) is None:
            raise HttpError(404, f"Cannot modify unknown bucket type: {type_name}")
        changes = await _props_body(request, "bucket type PUT")
        self._change(buckets.update_type, type_name, changes)
        return web.Response(status=204)

    # -------------------------------------------------------------- admin: bucket types

    def _describe(self, type_name: str) -> dict[str, Any]:
        meta, members = self._meta, self._members()
        status = buckets.type_status(self.config, meta, type_name, members)
        props = buckets.type_props(self.config, meta, type_name, active_only=False)
        out: dict[str, Any] = {"name": type_name, "status": status, "active": status == "active"}
        if props is not None:
            out["props"] = buckets.render_type(meta, type_name, props)
        if status in (buckets.CREATED, buckets.READY):
            out["unacknowledged"] = buckets.unacknowledged(meta, type_name, members)
        return out

    @_guarded
    async def list_types(self, request: web.Request) -> web.StreamResponse:
        names = buckets.type_names(self.config, self._meta)
        return web.json_response({"types": [self._describe(name) for name in names]})

    @_guarded
    async def type_status(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._describe(path_names(request)["type"]))

    @_guarded
    async def create_type(self, request: web.Request) -> web.StreamResponse:
        type_name = path_names(request)["type"]
        changes = await _props_body(request, "bucket type create")
        self._change(buckets.create_type, type_name, changes)
        return web.json_response(self._describe(type_name), status=201)

    @_guarded
    async def activate_type(self, request: web.Request) -> web.StreamResponse:
        type_name = path_names(request)["type"]
        self._change(buckets.activate_type, type_name, self._members())
        return web.json_response(self._describe(type_name))

    @_guarded
    async def update_type(self, request: web.Request) -> web.StreamResponse:
        type_name = path_names(request)["type"]
        changes = await _props_body(request, "bucket type update")
        self._change(buckets.update_type, type_name, changes)
        return web.json_response(self._describe(type_name))

    def routes(self) -> list[api.Route]:
        table = []
        for prefix in ("/types/{type}/buckets/{bucket}", "/buckets/{bucket}"):
            table += [
                api.get(prefix + "/props", self.get_bucket, _BUCKET_PROPS),
                api.put(prefix + "/props", self.put_bucket, _SET_BUCKET_PROPS),
                api.delete(prefix + "/props", self.reset_bucket, _RESET_BUCKET_PROPS),
            ]
        admin = "/admin/bucket-types"
        table += [
            api.get("/types/{type}/props", self.get_type, _TYPE_PROPS),
            api.put("/types/{type}/props", self.put_type, _SET_TYPE_PROPS),
            api.post("/types/{type}/props", self.put_type, _SET_TYPE_PROPS_BY_POST),
            api.get(admin, self.list_types, _LIST_TYPES),
            api.get(admin + "/{type}", self.type_status, _TYPE_STATUS),
            api.post(admin + "/{type}", self.create_type, _CREATE_TYPE),
            api.put(admin + "/{type}", self.update_type, _UPDATE_TYPE),
            api.post(admin + "/{type}/activate", self.activate_type, _ACTIVATE_TYPE),
        ]
        return table


# ------------------------------------------------------------------ OpenAPI descriptions

_PROPS_BODY = {"required": True, "content": {"application/json": {"schema": api.schema("Props")}}}
_PROPS_ANSWER = {
    "200": api.json_answer(api.schema("Props"), "Every property."),
    "404": api.response("NotFound"),
}
_PROPS_SET = {
    "204": api.response("NoContent"),
    "400": api.response("BadRequest"),
    "404": api.response("NotFound"),
    "415": api.response("Json"),
}
_BUCKET_PROPS = api.Operation(
    permission=api.PROPS_READ,
    summary="Bucket properties (the type's props layered with the bucket's)",
    tag="props",
    responses=_PROPS_ANSWER,
)
_SET_BUCKET_PROPS = api.Operation(
    permission="props",
    summary="Set bucket properties",
    tag="props",
    responses=_PROPS_SET,
    body=_PROPS_BODY,
)
_RESET_BUCKET_PROPS = api.Operation(
    permission="props",
    summary="Reset the bucket to its type's properties",
    tag="props",
    responses={"204": api.response("NoContent"), "404": api.response("NotFound")},
)
_TYPE_PROPS = api.Operation(
    permission=api.PROPS_READ,
    summary="Bucket type properties",
    tag="props",
    responses=_PROPS_ANSWER,
)
_SET_TYPE_PROPS = api.Operation(
    permission="props",
    summary="Set bucket type properties",
    tag="props",
    responses=_PROPS_SET,
    body=_PROPS_BODY,
)
_SET_TYPE_PROPS_BY_POST = replace(
    _SET_TYPE_PROPS, summary="Set bucket type properties (same as PUT)"
)

_LIST_TYPES = api.Operation(
    permission="admin",
    summary="Every bucket type, its status and props",
    tag="admin",
    responses=openapi.ADMIN_RESULT,
)
_TYPE_STATUS = api.Operation(
    permission="admin",
    summary="A bucket type's status and props",
    tag="admin",
    responses=openapi.ADMIN_RESULT,
)
_CREATE_TYPE = api.Operation(
    permission="admin",
    summary="Create a bucket type (created, not yet active)",
    tag="admin",
    responses={
        "201": api.json_answer(api.schema("AdminResult"), "The new type."),
        **openapi.ADMIN_REFUSED,
        "415": api.response("Json"),
    },
    body=_PROPS_BODY,
)
_UPDATE_TYPE = api.Operation(
    permission="admin",
    summary="Update a bucket type's props",
    tag="admin",
    responses={**openapi.ADMIN_RESULT, **openapi.ADMIN_REFUSED, "415": api.response("Json")},
    body=_PROPS_BODY,
)
_ACTIVATE_TYPE = api.Operation(
    permission="admin",
    summary="Activate a created type once every member has seen it",
    tag="admin",
    responses={**openapi.ADMIN_RESULT, **openapi.ADMIN_REFUSED},
)
