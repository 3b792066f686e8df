"""Routes that carry their own OpenAPI description, and the vocabulary to write one.

Every handler module declares its routes with `get`, `put`, `post`, `delete` or
`patch` from here instead of aiohttp's: each takes an `Operation` beside the
handler, so a route cannot be added without saying what it does, and
openapi.py builds /openapi.json from exactly the routes the app registers.
The description is read once, when the document is built; a request only ever
meets aiohttp's own route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute, UrlDispatcher

Json = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BOOL = {"type": "string", "enum": ["true", "false"]}

# Route permissions besides Riak's (config.PERMISSIONS); see Operation.
OPEN = "open"
USER = "user"
RECORDS = "records"
# Reading bucket or type props: `props` or `get` on that scope (Riak's get_bucket and
# get_bucket_type are apart from set_bucket; its clients read a type's props before a write).
PROPS_READ = "props or get"
# Each route the app registered (a GET's HEAD twin too) -> its Operation's permission.
PERMISSION_OF = web.AppKey("permission_of", dict)


@dataclass(frozen=True)
class Operation:
    """What the document says about one method of one path.

    `params` are the query and header parameters: a name from openapi.PARAMETERS
    (shared, so written once) or a parameter object of this operation's own. Path
    parameters are not listed: they come from the route's {names}.

    `permission` is what a caller must hold (http/security.py enforces it): one of
    config.PERMISSIONS, checked on the route's bucket type and bucket (a route without
    them is cluster-wide); PROPS_READ for reading props; USER for any authenticated user;
    OPEN for anyone; RECORDS
    for the record API, which checks its callers itself (http/records.py).
    """

    summary: str
    tag: str
    responses: Json
    params: Sequence[str | Json] = ()
    body: Json | None = None
    permission: str = field(kw_only=True)


@dataclass(frozen=True)
class Route(web.AbstractRouteDef):
    """An aiohttp route definition with its Operation; registers exactly as web.route would."""

    method: str
    path: str
    handler: Handler = field(repr=False)
    operation: Operation = field(repr=False)

    def register(self, router: UrlDispatcher) -> list[AbstractRoute]:
        # web.route registers a GET with its HEAD twin, as web.get does.
        return web.route(self.method, self.path, self.handler).register(router)


def get(path: str, handler: Handler, operation: Operation) -> Route:
    return Route("GET", path, handler, operation)


def put(path: str, handler: Handler, operation: Operation) -> Route:
    return Route("PUT", path, handler, operation)


def post(path: str, handler: Handler, operation: Operation) -> Route:
    return Route("POST", path, handler, operation)


def delete(path: str, handler: Handler, operation: Operation) -> Route:
    return Route("DELETE", path, handler, operation)


def patch(path: str, handler: Handler, operation: Operation) -> Route:
    return Route("PATCH", path, handler, operation)


# ---------------------------------------------------------------- describing


def ref(kind: str, name: str) -> Json:
    """A reference to a shared component: kind is parameters, schemas or responses."""
    return {"$ref": f"#/components/{kind}/{name}"}


def schema(name: str) -> Json:
    return ref("schemas", name)


def response(name: str) -> Json:
    return ref("responses", name)


def text(description: str) -> Json:
    """A response whose body is plain text."""
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def json_answer(body: Json, description: str) -> Json:
    """A response whose body is JSON of schema `body`."""
    return {"description": description, "content": {"application/json": {"schema": body}}}


def query(name: str, kind: Json, description: str, *, required: bool = False) -> Json:
    """A query parameter; `kind` is its schema."""
    param: Json = {"name": name, "in": "query", "schema": kind, "description": description}
    if required:
        param["required"] = True
    return param


def header(
    name: str, description: str, kind: Json | None = None, *, required: bool = False
) -> Json:
    """A request header parameter; `kind` is its schema (a string without one)."""
    param: Json = {
        "name": name,
        "in": "header",
        "schema": kind or {"type": "string"},
        "description": description,
    }
    if required:
        param["required"] = True
    return param


def path(name: str, description: str, kind: Json | None = None) -> Json:
    """A path parameter, named as in the route's {name}; `kind` is its schema."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": kind or {"type": "string"},
        "description": description,
    }
