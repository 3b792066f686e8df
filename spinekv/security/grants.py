"""Grants (pure): may a user do a permission on a bucket type and bucket, and changing grants.

As in Riak (riak_core_security), a grant is on `any`, on a bucket type, or on one
bucket of a type, and covers that scope and everything inside it. One rule is
spinekv's own: a grant on `any` never covers a protected type (the record API's),
so only a grant that names such a type reaches it. A scope of (None, None) is a
cluster-wide action (staging, listing users): only a grant on `any` covers it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from ..config import ANY, PERMISSIONS, Grant

Scope = tuple[str | None, str | None]


class GrantError(ValueError):
    """A permission or scope that cannot be granted; the message says why."""


def covers(
    grant: Grant, bucket_type: str | None, bucket: str | None, protected: Collection[str]
) -> bool:
    """Whether `grant`'s scope includes (bucket_type, bucket); None is "the whole of it"."""
    if grant.bucket_type is None:
        return bucket_type not in protected
    if grant.bucket_type != bucket_type:
        return False
    return grant.bucket is None or grant.bucket == bucket


def permitted(
    grants: Iterable[Grant],
    permission: str,
    bucket_type: str | None,
    bucket: str | None,
    protected: Collection[str],
) -> bool:
    """Whether some grant gives `permission` on (bucket_type, bucket)."""
    return any(
        permission in grant.permissions and covers(grant, bucket_type, bucket, protected)
        for grant in grants
    )


def parse_scope(text: str) -> Scope:
    """ "any", "TYPE" or "TYPE/BUCKET" -> (type or None, bucket or None)."""
    if text == ANY:
        return None, None
    bucket_type, slash, bucket = text.partition("/")
    if not bucket_type or "/" in bucket or (slash and not bucket):
        raise GrantError(f'{text!r} is not a scope: expected "any", "TYPE" or "TYPE/BUCKET"')
    return bucket_type, bucket or None


def parse_permissions(names: Iterable[str]) -> frozenset[str]:
    """Permission names, each one of PERMISSIONS; at least one."""
    chosen = frozenset(name.strip() for name in names)
    unknown = sorted(chosen - set(PERMISSIONS))
    if unknown or not chosen:
        raise GrantError(
            f"{', '.join(map(repr, unknown)) or 'no permissions given'}: "
            f"expected some of {', '.join(PERMISSIONS)}"
        )
    return chosen


def add_grant(
    grants: Iterable[Grant], permissions: frozenset[str], scope: Scope
) -> tuple[Grant, ...]:
    """`grants` with `permissions` added on exactly `scope` (one grant per scope)."""
    return _change(grants, scope, lambda held: held | permissions)


def revoke_grant(
    grants: Iterable[Grant], permissions: frozenset[str], scope: Scope
) -> tuple[Grant, ...]:
    """`grants` with `permissions` taken away on exactly `scope`, as Riak's revoke: a grant on
    another scope (`any` included) is left as it is."""
    return _change(grants, scope, lambda held: held - permissions)


def _change(
    grants: Iterable[Grant], scope: Scope, change: Callable[[frozenset[str]], frozenset[str]]
) -> tuple[Grant, ...]:
    out: list[Grant] = []
    held: frozenset[str] = frozenset()
    for grant in grants:
        if (grant.bucket_type, grant.bucket) == scope:
            held |= grant.permissions
        else:
            out.append(grant)
    changed = change(held)
    if changed:
        out.append(Grant(frozenset(changed), *scope))
    return tuple(sorted(out, key=lambda g: g.scope))
