"""Riak's service resources: the resource map at /, /ping, /stats, preflists, and /openapi.json.

The Riak clients read GET / (with Accept: application/json) to learn which
resources a node serves and GET /stats for `riak_kv_version` to learn which
features it has: the PyPI `riak` client switches on bucket types, 2i, counters
and preflists from these two answers. The resource map is worked out from the
routes the application actually registered, so it never offers what is not there.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from html import escape

from aiohttp import web
from aiohttp.web_urldispatcher import SystemRoute

from ..config import ClusterConfig
from ..node.coordinator import Coordinator
from ..props import BucketProps
from ..stats import NodeStats
from . import api
from .openapi import DOCUMENT, VERSION
from .request import HttpError, path_names, refusing

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (Riak resource module, the base path Riak reports, a request that proves we serve it).
# riak_kv_wm_bucket_type tells a client that /types/T/... paths work, so it is offered
# when typed objects are served (a client without it would put typed data in `default`).
RIAK_RESOURCES: tuple[tuple[str, str, str, str], ...] = (
    ("riak_kv_wm_bucket_type", "/types", "GET", "/types/t/buckets/b/keys/k"),
    ("riak_kv_wm_buckets", "/buckets", "GET", "/buckets"),
    ("riak_kv_wm_counter", "/buckets", "GET", "/buckets/b/counters/k"),
    ("riak_kv_wm_index", "/buckets", "GET", "/buckets/b/index/f_bin/v"),
    ("riak_kv_wm_keylist", "/buckets", "GET", "/buckets/b/keys"),
    ("riak_kv_wm_object", "/buckets", "GET", "/buckets/b/keys/k"),
    ("riak_kv_wm_ping", "/ping", "GET", "/ping"),
    ("riak_kv_wm_preflist", "/buckets", "GET", "/buckets/b/keys/k/preflist"),
    ("riak_kv_wm_props", "/buckets", "GET", "/buckets/b/props"),
    ("riak_kv_wm_stats", "/stats", "GET", "/stats"),
)

STORAGE_BACKENDS = {
    "LevelDBBackend": "riak_kv_eleveldb_backend",
    "MemoryBackend": "riak_kv_memory_backend",
}


# ------------------------------------------------------------------ pure helpers


def resource_map(serves: Callable[[str, str], bool]) -> dict[str, str]:
    """Riak resource name -> base path, for the resources `serves(method, path)` confirms."""
    return {name: base for name, base, method, probe in RIAK_RESOURCES if serves(method, probe)}


def negotiate(accept: str | None, offered: Sequence[str]) -> str | None:
    """The offered media type the Accept header prefers (first offered on a tie), or None.

    Follows RFC 9110: the most specific matching range gives a type its q; q=0 refuses it.
    A missing or empty header accepts anything; unparsable ranges are ignored.
    """
    if accept is None or not accept.strip():
        return offered[0]
    ranges: list[tuple[str, str, float]] = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        kind, slash, sub = media.lower().partition("/")
        if not slash or not kind or not sub:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = -1.0
        if 0.0 <= q <= 1.0:
            ranges.append((kind, sub, q))
    best, best_q = None, 0.0
    for media in offered:
        kind, _, sub = media.partition("/")
        matches = [
            (specificity, q)
            for r_kind, r_sub, q in ranges
            for specificity in [_specificity(kind, sub, r_kind, r_sub)]
            if specificity >= 0
        ]
        if not matches:
            continue
        q = max(matches)[1]
        if q > best_q:
            best, best_q = media, q
    return best


def _specificity(kind: str, sub: str, r_kind: str, r_sub: str) -> int:
    """2 for an exact match, 1 for type/*, 0 for */*, -1 for no match."""
    if r_kind == kind and r_sub == sub:
        return 2
    if r_kind == kind and r_sub == "*":
        return 1
    if r_kind == "*" and r_sub == "*":
        return 0
    return -1


def erlang_ownership(shares: dict[str, int]) -> str:
    """Riak's ring_ownership: the Erlang term [{node,partitions},...] printed as a string."""
    return "[" + ",".join(f"{{{_erlang_atom(n)},{c}}}" for n, c in sorted(shares.items())) + "]"


def _erlang_atom(name: str) -> str:
    if re.fullmatch(r"[a-z][A-Za-z0-9_@]*", name):
        return name
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def routes_serving(app: web.Application) -> Callable[[str, str], bool]:
    """`serves(method, path)`: whether `app` has a route for that request."""
    resources = list(app.router.resources())

    def serves(method: str, path: str) -> bool:
        for resource in resources:
            info = resource.get_info()
            pattern = info.get("pattern")
            matched = pattern.fullmatch(path) if pattern else info.get("path") == path
            if matched and any(route.method in (method, "*") for route in resource):
                return True
        return False

    return serves


def _text(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body.rstrip("\n") + "\n")


# ------------------------------------------------------------------ handlers


class ServiceHandlers:
    def __init__(
        self,
        config: ClusterConfig,
        coordinator: Coordinator,
        stats: NodeStats,
        storage_backend: str,
        props_of: Callable[[str, str], BucketProps | None] | None = None,
        counters: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.config = config
        self.coordinator = coordinator
        self.stats = stats
        # The node's totals beyond requests (anti-entropy, the reaper), under /stats' names.
        self._counters = counters
        self.storage_backend = STORAGE_BACKENDS.get(storage_backend, storage_backend)
        # (type, bucket) -> the bucket's effective props, or None for an unknown type.
        self._props_of = props_of or (lambda type_name, bucket: config.bucket_type(type_name))

    async def index(self, request: web.Request) -> web.Response:
        served = resource_map(routes_serving(request.app))
        # Riak also lists every resource in a Link header, whatever the body's format.
        link = ", ".join(f'<{path}>; rel="{name}"' for name, path in served.items())
        chosen = negotiate(request.headers.get("Accept"), ["text/html", "application/json"])
        if chosen is None:
            return _text(406, "acceptable types: text/html, application/json")
        if chosen == "application/json":
            return web.json_response(served, headers={"Link": link})
        items = "".join(
            f'<li><a href="{escape(path)}">{escape(name)}</a></li>' for name, path in served.items()
        )
        return web.Response(
            text=f"<html><body><ul>{items}</ul></body></html>",
            content_type="text/html",
            headers={"Link": link},
        )

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def stats_resource(self, request: web.Request) -> web.Response:
        chosen = negotiate(request.headers.get("Accept"), ["application/json", "text/plain"])
        if chosen is None:
            return _text(406, "acceptable types: application/json, text/plain")
        body = self.node_stats()
        if chosen == "text/plain":
            return web.Response(text=json.dumps(body, indent=4) + "\n", content_type="text/plain")
        return web.json_response(body)

    def node_stats(self) -> dict:
        membership = self.coordinator.membership
        state = membership.state
        me = self.coordinator.me
        return {
            "riak_kv_version": VERSION,
            "nodename": me,
            "connected_nodes": [
                n for n in self.config.node_names() if n != me and membership.is_up(n)
            ],
            "ring_members": state.member_names(),
            "ring_num_partitions": state.ring_size,
            "ring_ownership": erlang_ownership(membership.ring.shares()),
            "ring_creation_size": state.ring_size,
            "storage_backend": self.storage_backend,
            **self.stats.snapshot(),
            **self._counters(),
        }

    @refusing()
    async def preflist(self, request: web.Request) -> web.Response:
        # Names decoded as the object resource decodes them, so the answer is about
        # the replicas the object itself lives on.
        names = path_names(request)
        type_name, bucket, key = names.get("type", "default"), names["bucket"], names["key"]
        props = self._props_of(type_name, bucket)
        if props is None:
            raise HttpError(404, f"Unknown bucket type: {type_name}")
        membership = self.coordinator.membership
        ring = membership.ring
        partition = ring.partition_of(type_name.encode(), bucket.encode(), key.encode())
        try:
            entries = membership.preflist(partition, props.n_val)
        except ValueError as exc:  # an n_val the ring cannot hold
            raise HttpError(400, str(exc)) from None
        return web.json_response(
            {
                "preflist": [
                    {"partition": e.partition, "node": e.node, "primary": e.primary}
                    for e in entries
                ]
            }
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=request.app[DOCUMENT], content_type="application/json")

    def routes(self) -> list[api.Route]:
        return [
            api.get("/", self.index, _RESOURCE_MAP),
            api.get("/ping", self.ping, _PING),
            api.get("/stats", self.stats_resource, _STATS),
            api.get("/openapi.json", self.openapi, _OPENAPI),
            api.get("/buckets/{bucket}/keys/{key}/preflist", self.preflist, _PREFLIST),
            api.get("/types/{type}/buckets/{bucket}/keys/{key}/preflist", self.preflist, _PREFLIST),
        ]


_RESOURCE_MAP = api.Operation(
    permission=api.USER,
    summary="Riak's resource map: which resources this node serves, and where",
    tag="service",
    responses={
        "200": {
            "description": "JSON with Accept: application/json, else an HTML list.",
            "content": {
                "application/json": {"schema": api.schema("ResourceMap")},
                "text/html": {"schema": {"type": "string"}},
            },
        },
        "406": api.text("Neither JSON nor HTML is acceptable."),
    },
)
_PING = api.Operation(
    permission=api.OPEN, summary="Liveness", tag="service", responses={"200": api.text("OK")}
)
_STATS = api.Operation(
    permission=api.USER,
    summary="Node statistics (JSON; pretty-printed with Accept: text/plain)",
    tag="service",
    responses={
        "200": api.json_answer(api.schema("Stats"), "The statistics."),
        "406": api.text("Not acceptable."),
    },
)
_OPENAPI = api.Operation(
    permission=api.USER,
    summary="This document",
    tag="service",
    responses={"200": api.json_answer({"type": "object"}, "OpenAPI 3.0.")},
)
_PREFLIST = api.Operation(
    permission="get",
    summary="The preference list of a key: partition, node, primary or fallback",
    tag="service",
    responses={
        "200": api.json_answer(api.schema("Preflist"), "The replicas, primaries first."),
        "400": api.response("BadRequest"),
        "404": api.response("NotFound"),
    },
)


# ------------------------------------------------------------------ middleware


def stats_middleware(
    stats: NodeStats, clock: Callable[[], float] = time.monotonic
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Times every request and hands (method, matched route, status, µs) to `stats`; keeps
    `stats.backlog`, the requests not yet answered."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = clock()

        def observe(status: int) -> None:
            route = request.match_info.route
            template = None if isinstance(route, SystemRoute) else route.resource.canonical
            stats.observe(request.method, template, status, (clock() - started) * 1_000_000)

        stats.backlog += 1
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            observe(exc.status)
            raise
        except asyncio.CancelledError:  # the client went away: no answer to count
            raise
        except Exception:
            observe(500)  # aiohttp answers an unhandled error with a 500
            raise
        finally:
            stats.backlog -= 1
        observe(response.status)
        return response

    return middleware
