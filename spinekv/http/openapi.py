"""The OpenAPI 3.0 description of spinekv's HTTP surface, served at /openapi.json.

The document is data: the Riak-compatible resources (objects, bucket and type
properties, secondary indexes, key and bucket listing, counters, preflists), the
service resources (/, /ping, /stats, this document), the operator endpoints
under /admin, and the FHIR record API (its paths live in records_openapi.py).
Every bucket-level path exists twice, as /buckets/B/... (the `default` type) and
/types/T/buckets/B/..., built from one description.
tests/unit/test_http_service.py checks that the paths and methods here are
exactly the routes the node registers, so this cannot drift from the code.
"""

from __future__ import annotations

import copy
from typing import Any

from . import records_openapi

# Also /stats' riak_kv_version: Riak clients switch features on by version (the riak client
# enables bucket types from 2.0, preflists and write_once from 2.1), so spinekv reports the
# Riak release whose HTTP API it follows.
VERSION = "2.2.3-spinekv"

Json = dict[str, Any]

TEXT = {"text/plain": {"schema": {"type": "string"}}}


def _ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def _p(name: str) -> Json:
    return _ref("parameters", name)


def _r(name: str) -> Json:
    return _ref("responses", name)


def _s(name: str) -> Json:
    return _ref("schemas", name)


def _json(schema: Json, description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str) -> Json:
    return {"description": description, "content": TEXT}


def _query(name: str, schema: Json, description: str, required: bool = False) -> Json:
    param = {"name": name, "in": "query", "schema": schema, "description": description}
    if required:
        param["required"] = True
    return param


def _header(name: str, description: str, schema: Json | None = None) -> Json:
    return {
        "name": name,
        "in": "header",
        "schema": schema or {"type": "string"},
        "description": description,
    }


def _path(name: str, description: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


# ---------------------------------------------------------------- shared parts

_QUORUM = {
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "enum": ["one", "quorum", "all", "default"]},
    ]
}
_BOOL = {"type": "string", "enum": ["true", "false"]}

PARAMETERS: Json = {
    "type": _path("type", "Bucket type (`default` for the /buckets/... form)."),
    "bucket": _path("bucket", "Bucket name (percent-encoded)."),
    "key": _path("key", "Key (percent-encoded)."),
    "r": _query("r", _QUORUM, "Read quorum: replies needed before answering."),
    "pr": _query("pr", _QUORUM, "Primary read quorum: replies from primaries needed."),
    "w": _query("w", _QUORUM, "Write quorum: acknowledgements needed."),
    "dw": _query("dw", _QUORUM, "Durable write quorum: acknowledgements after fsync."),
    "pw": _query("pw", _QUORUM, "Primary write quorum: acknowledgements from primaries."),
    "rw": _query("rw", _QUORUM, "Delete quorum (Riak's rw): replies for the read and write."),
    "node_confirms": _query(
        "node_confirms", _QUORUM, "Acknowledgements needed from distinct physical nodes."
    ),
    "basic_quorum": _query("basic_quorum", _BOOL, "Answer not found after a quorum of misses."),
    "notfound_ok": _query("notfound_ok", _BOOL, "Count a replica's not found as a reply."),
    "timeout": _query(
        "timeout", {"type": "integer", "minimum": 1}, "Deadline in milliseconds (default 10000)."
    ),
    "returnbody": _query("returnbody", _BOOL, "Answer 200 with the stored object (or 300)."),
    "vtag": _query("vtag", {"type": "string"}, "Pick one sibling by its vtag (from a 300)."),
    "sync_on_write": _query(
        "sync_on_write",
        {"type": "string", "enum": ["default", "backend", "one", "all"]},
        "Riak's flush-to-disk choice for this write.",
    ),
    "asis": _query("asis", _BOOL, "Riak's replication hook; true is refused (400)."),
    "vclock": _header(
        "X-Riak-Vclock", "Causal context from an earlier read, sent back unchanged (base64)."
    ),
    "content_type": _header(
        "Content-Type", "Media type of the value; stored and returned with it (required)."
    ),
    "link": _header(
        "Link", 'Links to other objects: `</buckets/B/keys/K>; riaktag="TAG"`, comma-separated.'
    ),
    "meta": _header(
        "X-Riak-Meta-Name",
        "User metadata: any header starting X-Riak-Meta- is stored and returned.",
    ),
    "index_header": _header(
        "X-Riak-Index-Name_bin",
        "Secondary index entries: headers X-Riak-Index-NAME_bin (strings) or "
        "X-Riak-Index-NAME_int (integers), several values comma-separated.",
    ),
    "if_none_match": _header(
        "If-None-Match", "GET: 304 when the ETag matches. PUT: `*` creates only, else 412."
    ),
    "if_match": _header("If-Match", "PUT: write only when the current ETag matches, else 412."),
    "if_modified_since": _header(
        "If-Modified-Since",
        "304 when unchanged since this HTTP date; on writes too, as webmachine (Riak) answers.",
    ),
    "if_unmodified_since": _header(
        "If-Unmodified-Since", "PUT: 412 when the object changed since this HTTP date."
    ),
    "accept_siblings": _header(
        "Accept", "`multipart/mixed` returns every sibling in one 300 response."
    ),
}

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
                )
            },
        },
    },
    "AdminResult": {"type": "object", "additionalProperties": True},
}

RESPONSES: Json = {
    "BadRequest": _text("Malformed input; the body gives the reason and nothing changed."),
    "NotFound": _text("No such object, or an unknown bucket type."),
    "PreconditionFailed": _text("A conditional header did not hold; nothing was written."),
    "Unavailable": _text("The quorum could not be met in time; the body names which."),
    "NoContent": {"description": "Done."},
    "Json": _text("The body must be application/json."),
}

# ---------------------------------------------------------------- operations


def _op(
    summary: str,
    responses: Json,
    params: list[str] | None = None,
    *,
    extra: list[Json] | None = None,
    body: Json | None = None,
    tag: str,
) -> Json:
    op: Json = {
        "summary": summary,
        "tags": [tag],
        "parameters": [_p(name) for name in params or ()] + list(extra or ()),
        "responses": responses,
    }
    if body is not None:
        op["requestBody"] = body
    return op


_OBJECT_BODY = {
    "required": True,
    "description": "The value, stored as given under its Content-Type.",
    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
}
_PROPS_BODY = {"required": True, "content": {"application/json": {"schema": _s("Props")}}}
_PROPS_SET = {
    "204": _r("NoContent"),
    "400": _r("BadRequest"),
    "404": _r("NotFound"),
    "415": _r("Json"),
}
_WRITE = ["w", "dw", "pw", "node_confirms", "timeout", "returnbody", "sync_on_write", "asis"]
_WRITE_HEADERS = [
    "content_type",
    "vclock",
    "meta",
    "index_header",
    "link",
    "if_none_match",
    "if_match",
    "if_modified_since",
    "if_unmodified_since",
]
_STORED = {
    "200": _text("Stored; the body is the object (returnbody=true)."),
    "300": _text("Stored, and siblings exist (returnbody=true)."),
    "304": {"description": "Not modified (If-Modified-Since): nothing was written."},
    "400": _r("BadRequest"),
    "404": _text("Unknown bucket type."),
    "412": _r("PreconditionFailed"),
    "413": _text("The value exceeds max_object_size."),
    "415": _text("Content-Type is not a media type, or is reserved for counters."),
    "503": _r("Unavailable"),
}


def _object_ops() -> Json:
    fetch = _op(
        "Fetch an object",
        {
            "200": {
                "description": "The value, with ETag, Last-Modified, X-Riak-Vclock, "
                "X-Riak-Meta-*, X-Riak-Index-* and Link headers.",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            },
            "300": _text("Siblings: their vtags (or multipart/mixed when accepted)."),
            "304": {"description": "Not modified (If-None-Match / If-Modified-Since)."},
            "400": _r("BadRequest"),
            "404": _r("NotFound"),
            "503": _r("Unavailable"),
        },
        [
            *("r", "pr", "basic_quorum", "notfound_ok", "timeout", "vtag"),
            *("accept_siblings", "if_none_match", "if_modified_since"),
        ],
        tag="objects",
    )
    store = _op(
        "Store an object under its key",
        {**_STORED, "204": _r("NoContent")},
        _WRITE + _WRITE_HEADERS,
        body=_OBJECT_BODY,
        tag="objects",
    )
    delete = _op(
        "Delete an object (writes a tombstone)",
        {
            "204": _r("NoContent"),
            "400": _r("BadRequest"),
            "404": _r("NotFound"),
            "503": _r("Unavailable"),
        },
        ["rw", "r", "pr", "w", "dw", "pw", "node_confirms", "timeout", "vclock"],
        tag="objects",
    )
    post = copy.deepcopy(store)
    post["summary"] = "Store an object under its key (same as PUT)"
    return {"get": fetch, "put": store, "post": post, "delete": delete}


def _bucket_paths() -> Json:
    """The paths below a bucket, keyed by their suffix after /buckets/{bucket}."""
    index_params = [
        _query("return_terms", _BOOL, "Return [{term: key}] results instead of keys."),
        _query("max_results", {"type": "integer", "minimum": 1}, "Page size."),
        _query("continuation", {"type": "string"}, "Opaque token from the previous page."),
        _query("stream", _BOOL, "Send results in chunks as they are found."),
        _query("term_regex", {"type": "string"}, "Keep only terms matching this regex."),
        _query("pagination_sort", _BOOL, "Sort results (always true when paginating)."),
    ]
    index_answer = {
        "200": _json(_s("IndexResult"), "Matching keys (or terms and keys)."),
        "400": _r("BadRequest"),
        "404": _r("NotFound"),
        "503": _r("Unavailable"),
    }
    index_path = [
        _path("index", "Index name ending _bin or _int, or $bucket / $key."),
    ]
    return {
        "/keys/{key}": _object_ops(),
        "/keys": {
            "get": _op(
                "List the keys of a bucket (expensive: scans every partition)",
                {
                    "200": _json(_s("KeyList"), "The keys, or chunks of them when streaming."),
                    "400": _r("BadRequest"),
                    "404": _r("NotFound"),
                    "503": _r("Unavailable"),
                },
                ["timeout"],
                extra=[
                    _query(
                        "keys",
                        {"type": "string", "enum": ["true", "stream"]},
                        "true: one JSON answer; stream: chunked {keys: [...]} objects.",
                        required=True,
                    )
                ],
                tag="listing",
            ),
            "post": _op(
                "Store an object under a new key chosen by the server",
                {**_STORED, "201": _text("Created; the Location header names the new key.")},
                _WRITE + _WRITE_HEADERS,
                body=_OBJECT_BODY,
                tag="objects",
            ),
        },
        "/keys/{key}/preflist": {
            "get": _op(
                "The preference list of a key: partition, node, primary or fallback",
                {
                    "200": _json(_s("Preflist"), "The replicas, primaries first."),
                    "404": _r("NotFound"),
                },
                tag="service",
            )
        },
        "/props": {
            "get": _op(
                "Bucket properties (the type's props layered with the bucket's)",
                {"200": _json(_s("Props"), "Every property."), "404": _r("NotFound")},
                tag="props",
            ),
            "put": _op("Set bucket properties", _PROPS_SET, body=_PROPS_BODY, tag="props"),
            "delete": _op(
                "Reset the bucket to its type's properties",
                {"204": _r("NoContent"), "404": _r("NotFound")},
                tag="props",
            ),
        },
        "/index/{index}/{value}": {
            "get": _op(
                "Secondary index: keys whose index equals the value",
                index_answer,
                ["timeout"],
                extra=[*index_path, _path("value", "The term."), *index_params],
                tag="2i",
            )
        },
        "/index/{index}/{start}/{end}": {
            "get": _op(
                "Secondary index: keys whose index lies in [start, end]",
                index_answer,
                ["timeout"],
                extra=[
                    *index_path,
                    _path("start", "First term."),
                    _path("end", "Last term."),
                    *index_params,
                ],
                tag="2i",
            )
        },
    }


def _counter_ops() -> Json:
    return {
        "get": _op(
            "Value of a legacy counter (the bucket needs allow_mult=true)",
            {
                "200": _text("The counter, a decimal integer."),
                "400": _r("BadRequest"),
                "404": _r("NotFound"),
                "503": _r("Unavailable"),
            },
            ["r", "pr", "basic_quorum", "notfound_ok", "timeout"],
            tag="counters",
        ),
        "post": _op(
            "Add to a counter (the body is an integer, may be negative)",
            {
                "200": _text("The new value (returnvalue=true)."),
                "204": _r("NoContent"),
                "400": _r("BadRequest"),
                "404": _r("NotFound"),
                "503": _r("Unavailable"),
            },
            ["w", "dw", "pw", "timeout"],
            extra=[_query("returnvalue", _BOOL, "Answer 200 with the new value.")],
            body={
                "required": True,
                "content": {"text/plain": {"schema": {"type": "string", "pattern": "^-?[0-9]+$"}}},
            },
            tag="counters",
        ),
    }


def _listing_buckets() -> Json:
    return {
        "get": _op(
            "List buckets (expensive: scans every partition)",
            {
                "200": _json(_s("BucketList"), "The buckets, or chunks of them when streaming."),
                "400": _r("BadRequest"),
                "404": _r("NotFound"),
                "503": _r("Unavailable"),
            },
            ["timeout"],
            extra=[
                _query(
                    "buckets",
                    {"type": "string", "enum": ["true", "stream"]},
                    "true: one JSON answer; stream: chunked {buckets: [...]} objects.",
                    required=True,
                )
            ],
            tag="listing",
        )
    }


def _admin_paths() -> Json:
    result = {"200": _json(_s("AdminResult"), "The result.")}
    refused = {
        "400": _json(_s("AdminResult"), "Bad parameters: {error}."),
        "409": _json(_s("AdminResult"), "The change cannot be made now: {error}."),
    }
    return {
        "/admin/node": {"get": _op("This node's name, pid and cluster", result, tag="admin")},
        "/admin/status": {"get": _op("This node, its ring view and handoffs", result, tag="admin")},
        "/admin/ring": {"get": _op("The ring state as this node sees it", result, tag="admin")},
        "/admin/stage": {
            "post": _op(
                "Stage a membership change",
                {**result, **refused},
                extra=[
                    _query(
                        "action",
                        {"type": "string", "enum": ["join", "leave", "remove"]},
                        "What to stage.",
                        required=True,
                    ),
                    _query("node", {"type": "string"}, "A node of cluster.toml.", required=True),
                ],
                tag="admin",
            )
        },
        "/admin/clear": {"post": _op("Drop the staged changes", result, tag="admin")},
        "/admin/plan": {
            "get": _op(
                "What committing the staged changes would do", {**result, **refused}, tag="admin"
            )
        },
        "/admin/commit": {
            "post": _op("Commit the staged changes", {**result, **refused}, tag="admin")
        },
        "/admin/bucket-types": {
            "get": _op("Every bucket type, its status and props", result, tag="admin")
        },
        "/admin/bucket-types/{type}": {
            "get": _op("A bucket type's status and props", result, ["type"], tag="admin"),
            "post": _op(
                "Create a bucket type (created, not yet active)",
                {"201": _json(_s("AdminResult"), "The new type."), **refused, "415": _r("Json")},
                ["type"],
                body=_PROPS_BODY,
                tag="admin",
            ),
            "put": _op(
                "Update a bucket type's props",
                {**result, **refused, "415": _r("Json")},
                ["type"],
                body=_PROPS_BODY,
                tag="admin",
            ),
        },
        "/admin/bucket-types/{type}/activate": {
            "post": _op(
                "Activate a created type once every member has seen it",
                {**result, **refused},
                ["type"],
                tag="admin",
            )
        },
        "/admin/replicas/types/{type}/buckets/{bucket}/keys/{key}": {
            "get": _op(
                "What each replica of a key holds, without repairing it",
                {**result, "400": _r("BadRequest")},
                ["type", "bucket", "key"],
                extra=[_query("n_val", {"type": "integer", "minimum": 1}, "Replicas to show.")],
                tag="admin",
            )
        },
    }


def _service_paths() -> Json:
    return {
        "/": {
            "get": _op(
                "Riak's resource map: which resources this node serves, and where",
                {
                    "200": {
                        "description": "JSON with Accept: application/json, else an HTML list.",
                        "content": {
                            "application/json": {"schema": _s("ResourceMap")},
                            "text/html": {"schema": {"type": "string"}},
                        },
                    },
                    "406": _text("Neither JSON nor HTML is acceptable."),
                },
                tag="service",
            )
        },
        "/ping": {"get": _op("Liveness", {"200": _text("OK")}, tag="service")},
        "/stats": {
            "get": _op(
                "Node statistics (JSON; pretty-printed with Accept: text/plain)",
                {"200": _json(_s("Stats"), "The statistics."), "406": _text("Not acceptable.")},
                tag="service",
            )
        },
        "/openapi.json": {
            "get": _op(
                "This document",
                {"200": _json({"type": "object"}, "OpenAPI 3.0.")},
                tag="service",
            )
        },
    }


def _typed(item: Json) -> Json:
    """The same path item under /types/{type}: every operation takes the type too."""
    typed = copy.deepcopy(item)
    for op in typed.values():
        op["parameters"] = [_p("type"), *op["parameters"]]
    return typed


def _with_bucket(item: Json) -> Json:
    bucketed = copy.deepcopy(item)
    for op in bucketed.values():
        op["parameters"] = [_p("bucket"), *op["parameters"]]
    return bucketed


def _with_key(item: Json) -> Json:
    keyed = copy.deepcopy(item)
    for op in keyed.values():
        op["parameters"] = [_p("key"), *op["parameters"]]
    return keyed


def _build() -> Json:
    paths: Json = {}
    paths.update(_service_paths())
    paths["/buckets"] = _listing_buckets()
    paths["/types/{type}/buckets"] = _typed(_listing_buckets())
    for suffix, item in _bucket_paths().items():
        item = _with_key(item) if "{key}" in suffix else item
        paths[f"/buckets/{{bucket}}{suffix}"] = _with_bucket(item)
        paths[f"/types/{{type}}/buckets/{{bucket}}{suffix}"] = _typed(_with_bucket(item))
    # Riak's legacy counters exist for the default type only.
    paths["/buckets/{bucket}/counters/{key}"] = _with_bucket(_with_key(_counter_ops()))
    paths["/types/{type}/props"] = _typed(
        {
            "get": _op(
                "Bucket type properties",
                {"200": _json(_s("Props"), "Every property."), "404": _r("NotFound")},
                tag="props",
            ),
            "put": _op(
                "Set bucket type properties",
                _PROPS_SET,
                body=_PROPS_BODY,
                tag="props",
            ),
            "post": _op(
                "Set bucket type properties (same as PUT)",
                _PROPS_SET,
                body=_PROPS_BODY,
                tag="props",
            ),
        }
    )
    paths.update(_admin_paths())
    paths.update(records_openapi.paths())
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
            "parameters": PARAMETERS,
            "schemas": {**SCHEMAS, **records_openapi.SCHEMAS},
            "responses": RESPONSES,
        },
    }


_DOCUMENT = _build()


def document() -> Json:
    """A fresh copy of the OpenAPI document (callers may change it freely)."""
    return copy.deepcopy(_DOCUMENT)
