"""The OpenAPI 3.0 document of spinekv's HTTP surface, built from the routes themselves.

Each handler module declares its routes with spinekv.http.api, an Operation beside
every handler; `document` walks those routes and adds the shared components
below (parameters, schemas, responses), so the paths and methods in the document
are exactly the routes the app registers, and a route cannot go undescribed.
`add_routes` registers a node's routes and keeps their document, serialised
once, for GET /openapi.json.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web

from . import api, records_openapi

# Also /stats' riak_kv_version: Riak clients switch features on by version (the riak client
# enables bucket types from 2.0, preflists and write_once from 2.1), so spinekv reports the
# Riak release whose HTTP API it follows.
VERSION = "2.2.3-spinekv"

Json = dict[str, Any]

DOCUMENT = web.AppKey("openapi_document", bytes)

# ---------------------------------------------------------------- shared parameters

_QUORUM = {
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "enum": ["one", "quorum", "all", "default"]},
    ]
}

# Path parameters are named as the routes name them ({type}, {bucket}, ...); the others
# are named for what they are, and operations list them by these names.
PARAMETERS: Json = {
    "type": api.path("type", "Bucket type (`default` for the /buckets/... form)."),
    "bucket": api.path("bucket", "Bucket name (percent-encoded)."),
    "key": api.path("key", "Key (percent-encoded)."),
    "field": api.path("field", "Index name ending _bin or _int, or $bucket / $key."),
    "start": api.path("start", "The term to match, or the first term of a range."),
    "end": api.path("end", "The last term of a range."),
    "user": api.path("user", "A user's name (spinekv admin user)."),
    "queue": api.path("queue", "A replication queue's name ([[replication.source]] name)."),
    "r": api.query("r", _QUORUM, "Read quorum: replies needed before answering."),
    "pr": api.query("pr", _QUORUM, "Primary read quorum: replies from primaries needed."),
    "w": api.query("w", _QUORUM, "Write quorum: acknowledgements needed."),
    "dw": api.query("dw", _QUORUM, "Durable write quorum: acknowledgements after fsync."),
    "pw": api.query("pw", _QUORUM, "Primary write quorum: acknowledgements from primaries."),
    "rw": api.query("rw", _QUORUM, "Delete quorum (Riak's rw): replies for the read and write."),
    "node_confirms": api.query(
        "node_confirms", _QUORUM, "Acknowledgements needed from distinct physical nodes."
    ),
    "basic_quorum": api.query(
        "basic_quorum", api.BOOL, "Answer not found after a quorum of misses."
    ),
    "notfound_ok": api.query("notfound_ok", api.BOOL, "Count a replica's not found as a reply."),
    "timeout": api.query(
        "timeout",
        {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
        "Deadline in milliseconds; 0 or none is the node's (default 10000).",
    ),
    "returnbody": api.query("returnbody", api.BOOL, "Answer 200 with the stored object (or 300)."),
    "vtag": api.query("vtag", {"type": "string"}, "Pick one sibling by its vtag (from a 300)."),
    "sync_on_write": api.query(
        "sync_on_write",
        {"type": "string", "enum": ["default", "backend", "one", "all"]},
        "Riak's flush-to-disk choice for this write.",
    ),
    "asis": api.query("asis", api.BOOL, "Riak's replication hook; true is refused (400)."),
    "vclock": api.header(
        "X-Riak-Vclock", "Causal context from an earlier read, sent back unchanged (base64)."
    ),
    "content_type": api.header(
        "Content-Type", "Media type of the value; stored and returned with it (required)."
    ),
    "link": api.header(
        "Link", 'Links to other objects: `</buckets/B/keys/K>; riaktag="TAG"`, comma-separated.'
    ),
    "meta": api.header(
        "X-Riak-Meta-Name",
        "User metadata: any header starting X-Riak-Meta- is stored and returned.",
    ),
    "index_header": api.header(
        "X-Riak-Index-Name_bin",
        "Secondary index entries: headers X-Riak-Index-NAME_bin (strings) or "
        "X-Riak-Index-NAME_int (integers), several values comma-separated.",
    ),
    "if_none_match": api.header(
        "If-None-Match",
        "GET: 304, and PUT, POST and DELETE: 412, when an ETag matches (`*`: when the "
        "object exists).",
    ),
    "if_match": api.header(
        "If-Match",
        "PUT, POST and DELETE: only when the current ETag matches (`*`: when the object "
        "exists), else 412.",
    ),
    "if_modified_since": api.header(
        "If-Modified-Since",
        "304 when unchanged since this HTTP date; on writes too, as webmachine (Riak) answers.",
    ),
    "if_unmodified_since": api.header(
        "If-Unmodified-Since",
        "PUT, POST and DELETE: 412 when the object changed since this HTTP date.",
    ),
    "accept_siblings": api.header(
        "Accept", "`multipart/mixed` returns every sibling in one 300 response."
    ),
}

# Parameter groups that several operations share.
READ_QUORUM = ("r", "pr", "basic_quorum", "notfound_ok", "timeout")
WRITE_PARAMS = ("w", "dw", "pw", "node_confirms", "timeout", "returnbody", "sync_on_write", "asis")
WRITE_HEADERS = (
    "content_type",
    "vclock",
    "meta",
    "index_header",
    "link",
    "if_none_match",
    "if_match",
    "if_modified_since",
    "if_unmodified_since",
)

# ---------------------------------------------------------------- shared schemas and responses

_STRING_LIST = {"type": "array", "items": {"type": "string"}}
_PROPS = {
    "type": "object",
    "description": "Riak bucket properties (n_val, allow_mult, last_write_wins, r, w, dw, rw, "
    "pr, pw, node_confirms, basic_quorum, notfound_ok, and the rest).",
    "additionalProperties": True,
}

SCHEMAS: Json = {
    "Props": {
        "type": "object",
        "required": ["props"],
        "properties": {"props": _PROPS},
    },
    "KeyList": {"type": "object", "properties": {"keys": _STRING_LIST}},
    "BucketList": {"type": "object", "properties": {"buckets": _STRING_LIST}},
    "IndexResult": {
        "type": "object",
        "properties": {
            "keys": _STRING_LIST,
            "results": {
                "type": "array",
                "description": "With return_terms=true: one {term: key} object per match.",
                "items": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "continuation": {"type": "string"},
        },
    },
    "Preflist": {
        "type": "object",
        "properties": {
            "preflist": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "partition": {"type": "integer"},
                        "node": {"type": "string"},
                        "primary": {"type": "boolean"},
                    },
                },
            }
        },
    },
    "ResourceMap": {
        "type": "object",
        "description": "Riak resource module name -> base path of that resource.",
        "additionalProperties": {"type": "string"},
    },
    "Stats": {
        "type": "object",
        "description": "Node statistics under Riak's names (latencies in microseconds).",
        "properties": {
            "riak_kv_version": {"type": "string"},
            "nodename": {"type": "string"},
            "connected_nodes": _STRING_LIST,
            "ring_members": _STRING_LIST,
            "ring_num_partitions": {"type": "integer"},
            "ring_ownership": {"type": "string"},
            "storage_backend": {"type": "string"},
            **{
                name: {"type": "integer"}
                for name in (
                    "node_gets",
                    "node_gets_total",
                    "node_puts",
                    "node_puts_total",
                    *(
                        f"node_{op}_fsm_time_{s}"
                        for op in ("get", "put")
                        for s in ("mean", "median", "95", "99", "100")
                    ),
                    "http_4xx",
                    "http_4xx_total",
                    "http_5xx",
                    "http_5xx_total",
                    # Totals since start; zero on a node without anti-entropy.
                    "aae_exchanges_in_sync",
                    "aae_exchanges_repaired",
                    "aae_exchanges_unconfirmed",
                    "aae_exchanges_skipped",
                    "aae_keys_repaired",
                    "aae_tree_rebuilds",
                    "tombstones_reaped",
                )
            },
        },
    },
    "AdminResult": {"type": "object", "additionalProperties": True},
    "AaeStatus": {
        "type": "object",
        "description": "A node's anti-entropy trees; `enabled` false and no trees without AAE.",
        "properties": {
            "node": {"type": "string"},
            "enabled": {"type": "boolean"},
            "segments": {"type": "integer", "nullable": True},
            "trees": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "One tree per (partition, n_val) this node holds as a primary.",
                    "properties": {
                        "partition": {"type": "integer"},
                        "n_val": {"type": "integer"},
                        "source": {"type": "integer", "description": "The vnode it covers."},
                        "state": {"type": "string", "enum": ["built", "loaded", "rebuilding"]},
                        "keys": {"type": "integer"},
                        "root": {"type": "string", "description": "Hex."},
                        "last_rebuild": {
                            "type": "number",
                            "nullable": True,
                            "description": "Epoch seconds; null if never built since start.",
                        },
                        "last_exchange": {
                            "type": "object",
                            "nullable": True,
                            "description": "The last exchange that ran to its end, or null.",
                            "properties": {
                                "when": {"type": "number", "description": "Epoch seconds."},
                                "peer": {"type": "string"},
                                "outcome": {
                                    "type": "string",
                                    "enum": ["in_sync", "unconfirmed", "repair"],
                                },
                                "repaired": {"type": "integer"},
                            },
                        },
                        "repairs_last_hour": {
                            "type": "integer",
                            "description": "Keys this tree's exchanges repaired in the last hour.",
                        },
                    },
                },
            },
        },
    },
}

RESPONSES: Json = {
    "BadRequest": api.text("Malformed input; the body gives the reason and nothing changed."),
    "NotFound": api.text("No such object, or an unknown bucket type."),
    "PreconditionFailed": api.text("A conditional header did not hold; nothing was written."),
    "Unavailable": api.text("The quorum could not be met in time; the body names which."),
    "NoContent": {"description": "Done."},
    "Json": api.text("The body must be application/json."),
}

# Every /admin operation answers JSON: its result, or {error} when refused.
ADMIN_RESULT = {"200": api.json_answer(api.schema("AdminResult"), "The result.")}
ADMIN_REFUSED = {
    "400": api.json_answer(api.schema("AdminResult"), "Bad parameters: {error}."),
    "409": api.json_answer(api.schema("AdminResult"), "The change cannot be made now: {error}."),
}

# ---------------------------------------------------------------- the document

_PATH_NAMES = re.compile(r"\{([^}]+)\}")
_ALL_PARAMETERS: Json = {**PARAMETERS, **records_openapi.PARAMETERS}


def document(routes: Iterable[web.AbstractRouteDef]) -> Json:
    """The OpenAPI document of `routes`; a route declared without spinekv.http.api is refused."""
    paths: Json = {}
    for route in routes:
        if not isinstance(route, api.Route):
            raise TypeError(f"{route!r} has no OpenAPI description: declare it with http.api")
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "spinekv HTTP API",
            "version": VERSION,
            "description": "Riak KV's HTTP API (objects, bucket props and types, 2i, listing, "
            "counters, preflists, ping, stats), spinekv's /admin endpoints, and the FHIR record "
            "API (PDS demographics, Summary Care Records, batch tracing).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "parameters": copy.deepcopy(_ALL_PARAMETERS),
            "schemas": copy.deepcopy({**SCHEMAS, **records_openapi.SCHEMAS}),
            "responses": copy.deepcopy(RESPONSES),
        },
    }


def add_routes(app: web.Application, routes: Sequence[api.Route]) -> None:
    """Register `routes` on `app`, keep their document for GET /openapi.json, and each
    registered route's permission for the security middleware."""
    described = json.dumps(document(routes), indent=1).encode()  # refuses an undescribed route
    permissions = {}
    for route in routes:
        for registered in route.register(app.router):
            permissions[registered] = route.operation.permission
    app[api.PERMISSION_OF] = permissions
    app[DOCUMENT] = described


def _operation(route: api.Route) -> Json:
    op = route.operation
    where = f"{route.method} {route.path}"
    parameters = [_shared(name, "path", where) for name in _PATH_NAMES.findall(route.path)]
    parameters += [
        _shared(param, "query or header", where) if isinstance(param, str) else param
        for param in op.params
    ]
    described: Json = {
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": parameters,
        "responses": op.responses,
        "x-spinekv-permission": op.permission,
    }
    if op.body is not None:
        described["requestBody"] = op.body
    # The operation's parts may be shared with other routes: the document gets its own.
    return copy.deepcopy(described)


def _shared(name: str, kind: str, where: str) -> Json:
    """A reference to the shared parameter `name`, which must exist and be of the kind asked."""
    param = _ALL_PARAMETERS.get(name)
    if param is None or (param["in"] == "path") != (kind == "path"):
        raise KeyError(f"{where}: no {kind} parameter {name!r} in openapi.PARAMETERS")
    return api.ref("parameters", name)
