"""Users at runtime (pure): cluster.toml's users overlaid by the gossiped metadata's.

Users live in the gossiped cluster metadata (buckets.BucketMeta, kind USER), the
way Riak keeps its security data in the cluster metadata: a change made through
any node reaches every node with the ring, needs no file on each host, and
merges like bucket types (the newer entry wins). cluster.toml's [[user]] tables
seed the set; an entry in the metadata replaces the seed user of that name, and
a deleted one (None) hides it, so a deleted seed user stays deleted.
Rendering never shows a hash, only which secrets are set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ..buckets import USER, BucketMeta
from ..config import ANY, ROLES, ClusterConfig, Grant, User
from .grants import GrantError, Scope, add_grant, parse_permissions, parse_scope, revoke_grant
from .secrets import is_hashed, verify_secret

# A source's users list uses "all" for everyone, so no user may be called that.
RESERVED = ("all",)


class UserError(ValueError):
    """A user change that cannot be made; the message says why."""


class UnknownUser(UserError):
    """No user of that name."""


class UserExists(UserError):
    """A user of that name exists already."""


# ---------------------------------------------------------------- the stored form


def _to_value(user: User) -> dict[str, Any]:
    return {
        "role": user.role,
        "token_hash": user.token_hash,
        "password_hash": user.password_hash,
        "grants": [[grant.scope, sorted(grant.permissions)] for grant in user.grants],
    }


def _from_value(name: str, value: Mapping[str, Any]) -> User | None:
    """The user an entry stores; None for one this node cannot read (a newer peer's form)."""
    try:
        grants = []
        for scope, permissions in value["grants"]:
            bucket_type, bucket = parse_scope(scope)
            grants.append(Grant(parse_permissions(permissions), bucket_type, bucket))
        role, token, password = (
            value.get("role"),
            value.get("token_hash"),
            value.get("password_hash"),
        )
        if not all(v is None or isinstance(v, str) for v in (role, token, password)):
            return None
        return User(name, role, token, password, tuple(grants))
    except (GrantError, TypeError, ValueError, KeyError):
        return None


# ---------------------------------------------------------------- reading


def effective_users(config: ClusterConfig, meta: BucketMeta) -> dict[str, User]:
    """Every user: cluster.toml's, with the metadata's entries over them."""
    users = {user.name: user for user in config.users}
    for (kind, _, name), entry in meta.entries.items():
        if kind != USER:
            continue
        user = None if entry.value is None else _from_value(name, entry.value)
        if user is None:
            users.pop(name, None)  # deleted, or unreadable: fail closed
        else:
            users[name] = user
    return users


class Users:
    """name -> User for the node's current metadata, worked out again only when it changes."""

    def __init__(self, config: ClusterConfig, current: Callable[[], BucketMeta]) -> None:
        self._config = config
        self._current = current
        self._meta: BucketMeta | None = None
        self._users: dict[str, User] = {}

    def __call__(self) -> dict[str, User]:
        meta = self._current()
        if meta is not self._meta:
            self._users = effective_users(self._config, meta)
            self._meta = meta
        return self._users


def render(user: User) -> dict[str, Any]:
    """A user as `admin user list` shows it: no hashes, only which secrets are set."""
    return {
        "name": user.name,
        "role": user.role,
        "grants": [{"on": g.scope, "permissions": sorted(g.permissions)} for g in user.grants],
        "token": user.token_hash is not None,
        "password": user.password_hash is not None,
    }


def demo_users(users: Mapping[str, User], demo_tokens: tuple[str, ...]) -> list[str]:
    """Users whose token is one of the documented demo tokens (slow: scrypt per pair)."""
    return sorted(
        user.name
        for user in users.values()
        if user.token_hash is not None
        and any(verify_secret(token, user.token_hash) for token in demo_tokens)
    )


# ---------------------------------------------------------------- changes


def _check_name(name: str) -> None:
    if not name or not name.isprintable() or name != name.strip() or len(name) > 256:
        raise UserError(f"{name!r} is not a valid user name")
    if name in RESERVED or name == ANY:
        raise UserError(f"{name!r} is reserved and cannot name a user")


def _existing(config: ClusterConfig, meta: BucketMeta, name: str) -> User:
    user = effective_users(config, meta).get(name)
    if user is None:
        raise UnknownUser(f"no user named {name!r}")
    return user


def _put(meta: BucketMeta, user: User, now_us: int, me: str) -> BucketMeta:
    return meta.put((USER, "", user.name), _to_value(user), now_us, me)


def add_user(
    config: ClusterConfig,
    meta: BucketMeta,
    name: str,
    role: str | None,
    token_hash: str | None,
    password_hash: str | None,
    now_us: int,
    me: str,
) -> BucketMeta:
    """A new user (no grants yet); its secrets arrive already hashed."""
    _check_name(name)
    if name in effective_users(config, meta):
        raise UserExists(f"a user named {name!r} exists already")
    if role is not None and role not in ROLES:
        raise UserError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    for what, stored in (("token_hash", token_hash), ("password_hash", password_hash)):
        if stored is not None and not is_hashed(stored):
            raise UserError(f"{what} is not a scrypt hash (send hashes, never secrets)")
    return _put(meta, User(name, role, token_hash, password_hash), now_us, me)


def delete_user(
    config: ClusterConfig, meta: BucketMeta, name: str, now_us: int, me: str
) -> BucketMeta:
    _existing(config, meta, name)
    return meta.put((USER, "", name), None, now_us, me)


def grant(
    config: ClusterConfig,
    meta: BucketMeta,
    name: str,
    permissions: frozenset[str],
    scope: Scope,
    now_us: int,
    me: str,
) -> BucketMeta:
    user = _existing(config, meta, name)
    return _put(meta, replace(user, grants=add_grant(user.grants, permissions, scope)), now_us, me)


def revoke(
    config: ClusterConfig,
    meta: BucketMeta,
    name: str,
    permissions: frozenset[str],
    scope: Scope,
    now_us: int,
    me: str,
) -> BucketMeta:
    user = _existing(config, meta, name)
    changed = replace(user, grants=revoke_grant(user.grants, permissions, scope))
    return _put(meta, changed, now_us, me)
