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
from typing import Any

from aiohttp import web

from ..config import ClusterConfig
from ..node import buckets
from ..node.buckets import BucketMeta
from ..node.membership import Membership
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
        return web.json_response(
            {"props": buckets.render_bucket(self.config, meta, type_name, bucket, props)}
        )

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
        return web.json_response(
            {"props": buckets.render_type(self.config, meta, type_name, props)}
        )

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
            out["props"] = buckets.render_type(self.config, meta, type_name, props)
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

    def routes(self) -> list[web.RouteDef]:
        table = []
        for prefix in ("/types/{type}/buckets/{bucket}", "/buckets/{bucket}"):
            table += [
                web.get(prefix + "/props", self.get_bucket),
                web.put(prefix + "/props", self.put_bucket),
                web.delete(prefix + "/props", self.reset_bucket),
            ]
        admin = "/admin/bucket-types"
        table += [
            web.get("/types/{type}/props", self.get_type),
            web.put("/types/{type}/props", self.put_type),
            web.post("/types/{type}/props", self.put_type),
            web.get(admin, self.list_types),
            web.get(admin + "/{type}", self.type_status),
            web.post(admin + "/{type}", self.create_type),
            web.put(admin + "/{type}", self.update_type),
            web.post(admin + "/{type}/activate", self.activate_type),
        ]
        return table
