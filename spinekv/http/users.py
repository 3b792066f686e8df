"""Users at runtime over HTTP: the /admin/users endpoints `spinekv admin user` calls.

Secrets arrive hashed (the CLI hashes them locally) and are never answered back;
every change is made on this node's cluster metadata and gossiped from here, as
bucket types are (membership.update_buckets), so it reaches every node.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..buckets import BucketMeta
from ..config import ClusterConfig
from ..node.membership import Membership
from ..security import users
from ..security.grants import GrantError, parse_permissions, parse_scope
from . import api, openapi
from .request import HttpError, json_answer, path_names, refusing

_guarded = refusing(json_answer)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise HttpError(415, f"Content-Type must be application/json, not {request.content_type}")
    try:
        body = json.loads(await request.read() or b"null")
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object")
    return body


def _text_field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise HttpError(400, f"{name} must be a string")
    return value


def _grant_args(body: dict[str, Any]) -> tuple[frozenset[str], tuple[str | None, str | None]]:
    permissions, on = body.get("permissions"), body.get("on")
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise HttpError(400, 'permissions must be a list of names, e.g. ["get", "put"]')
    if not isinstance(on, str):
        raise HttpError(400, 'on must be "any", "TYPE" or "TYPE/BUCKET"')
    try:
        return parse_permissions(permissions), parse_scope(on)
    except GrantError as exc:
        raise HttpError(400, str(exc)) from None


class UserHandlers:
    def __init__(self, config: ClusterConfig, membership: Membership) -> None:
        self.config = config
        self.membership = membership

    def _change(self, change: Callable[..., BucketMeta], *args: Any) -> None:
        """Make one of security/users.py's changes to this node's metadata, and gossip it."""
        now_us = int(self.membership.clock.time() * 1_000_000)
        try:
            meta = change(self.config, self.membership.buckets, *args, now_us, self.membership.me)
        except users.UnknownUser as exc:
            raise HttpError(404, str(exc)) from None
        except users.UserExists as exc:
            raise HttpError(409, str(exc)) from None
        except users.UserError as exc:
            raise HttpError(400, str(exc)) from None
        self.membership.update_buckets(meta)

    def _shown(self, name: str) -> dict[str, Any]:
        return users.render(users.effective_users(self.config, self.membership.buckets)[name])

    @_guarded
    async def list_users(self, request: web.Request) -> web.StreamResponse:
        found = users.effective_users(self.config, self.membership.buckets)
        return web.json_response({"users": [users.render(found[n]) for n in sorted(found)]})

    @_guarded
    async def add_user(self, request: web.Request) -> web.StreamResponse:
        name = path_names(request)["user"]
        body = await _body(request)
        fields = [_text_field(body, k) for k in ("role", "token_hash", "password_hash")]
        self._change(users.add_user, name, *fields)
        return web.json_response(self._shown(name), status=201)

    @_guarded
    async def delete_user(self, request: web.Request) -> web.StreamResponse:
        name = path_names(request)["user"]
        self._change(users.delete_user, name)
        return web.json_response({"name": name, "deleted": True})

    @_guarded
    async def grant(self, request: web.Request) -> web.StreamResponse:
        name = path_names(request)["user"]
        self._change(users.grant, name, *_grant_args(await _body(request)))
        return web.json_response(self._shown(name))

    @_guarded
    async def revoke(self, request: web.Request) -> web.StreamResponse:
        name = path_names(request)["user"]
        self._change(users.revoke, name, *_grant_args(await _body(request)))
        return web.json_response(self._shown(name))

    def routes(self) -> list[api.Route]:
        one = "/admin/users/{user}"
        return [
            api.get("/admin/users", self.list_users, _LIST),
            api.post(one, self.add_user, _ADD),
            api.delete(one, self.delete_user, _DELETE),
            api.post(one + "/grant", self.grant, _GRANT),
            api.post(one + "/revoke", self.revoke, _REVOKE),
        ]


_USER = api.json_answer(
    {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "role": {"type": "string", "nullable": True},
            "grants": {"type": "array", "items": {"type": "object"}},
            "token": {"type": "boolean", "description": "Whether a token is set."},
            "password": {"type": "boolean", "description": "Whether a password is set."},
        },
    },
    "The user (never its secrets).",
)
_REFUSED = {
    **openapi.ADMIN_REFUSED,
    "404": api.json_answer(api.schema("AdminResult"), "No such user."),
}
_JSON_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
_LIST = api.Operation(
    permission="admin",
    summary="Every user: role, grants, which secrets are set",
    tag="admin",
    responses={"200": api.json_answer({"type": "object"}, "{users: [...]}")},
)
_ADD = api.Operation(
    permission="admin",
    summary="Add a user: {role, token_hash, password_hash} (scrypt hashes, never secrets)",
    tag="admin",
    responses={"201": _USER, **_REFUSED},
    body=_JSON_BODY,
)
_DELETE = api.Operation(
    permission="admin",
    summary="Delete a user (a cluster.toml user too: it stays deleted)",
    tag="admin",
    responses={"200": api.json_answer({"type": "object"}, "{name, deleted: true}"), **_REFUSED},
)
_GRANT = api.Operation(
    permission="admin",
    summary='Grant {permissions: [...], on: "any" | "TYPE" | "TYPE/BUCKET"}',
    tag="admin",
    responses={"200": _USER, **_REFUSED},
    body=_JSON_BODY,
)
_REVOKE = api.Operation(
    permission="admin",
    summary="Revoke permissions on exactly that scope, as Riak's revoke",
    tag="admin",
    responses={"200": _USER, **_REFUSED},
    body=_JSON_BODY,
)
