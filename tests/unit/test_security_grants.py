"""Grants (pure): Riak's scopes, and the protected types a grant on `any` never reaches."""

from __future__ import annotations

import pytest

from spinekv.config import Grant
from spinekv.security.grants import (
    GrantError,
    add_grant,
    parse_permissions,
    parse_scope,
    permitted,
    revoke_grant,
)

PROTECTED = {"records"}
ANY_GET = Grant(frozenset({"get", "put"}))
TYPE_LIST = Grant(frozenset({"list"}), "siblings")
BUCKET_DELETE = Grant(frozenset({"delete"}), "siblings", "b")


@pytest.mark.parametrize(
    "permission, bucket_type, bucket, expected",
    [
        ("get", "default", "b", True),
        ("put", "siblings", "x", True),
        ("get", None, None, True),  # a cluster-wide action: `any` covers it
        ("get", "records", "patients", False),  # ... but never a protected type
        ("get", "records", None, False),
        ("list", "siblings", None, True),
        ("list", "siblings", "x", True),
        ("list", "default", "x", False),
        ("list", None, None, False),  # a type grant is not cluster-wide
        ("delete", "siblings", "b", True),
        ("delete", "siblings", "c", False),
        ("delete", "siblings", None, False),
        ("admin", "default", "b", False),
    ],
)
def test_a_grant_covers_its_scope_and_what_is_inside_it(permission, bucket_type, bucket, expected):
    grants = [ANY_GET, TYPE_LIST, BUCKET_DELETE]
    assert permitted(grants, permission, bucket_type, bucket, PROTECTED) is expected


def test_only_a_grant_naming_a_protected_type_reaches_it():
    on_type = Grant(frozenset({"get"}), "records")
    on_bucket = Grant(frozenset({"get"}), "records", "patients")
    assert permitted([on_type], "get", "records", "consent", PROTECTED)
    assert permitted([on_bucket], "get", "records", "patients", PROTECTED)
    assert not permitted([on_bucket], "get", "records", "consent", PROTECTED)
    assert not permitted([on_type], "put", "records", "consent", PROTECTED)
    assert not permitted([], "get", "default", "b", PROTECTED)


@pytest.mark.parametrize(
    "text, scope",
    [("any", (None, None)), ("records", ("records", None)), ("t/b", ("t", "b"))],
)
def test_scopes_parse(text, scope):
    assert parse_scope(text) == scope


@pytest.mark.parametrize("text", ["", "/b", "t/", "t/b/c"])
def test_bad_scopes_are_refused(text):
    with pytest.raises(GrantError, match="not a scope"):
        parse_scope(text)


def test_permissions_must_be_riaks():
    assert parse_permissions(["get", " put"]) == {"get", "put"}
    with pytest.raises(GrantError, match="'read'"):
        parse_permissions(["get", "read"])
    with pytest.raises(GrantError, match="no permissions given"):
        parse_permissions([])


def test_granting_merges_per_scope_and_revoking_takes_only_that_scope():
    grants = add_grant((), frozenset({"get"}), (None, None))
    grants = add_grant(grants, frozenset({"put"}), (None, None))
    grants = add_grant(grants, frozenset({"get"}), ("records", None))
    assert grants == (
        Grant(frozenset({"get", "put"})),
        Grant(frozenset({"get"}), "records"),
    )
    # Revoking on the type leaves `any` alone, as Riak's revoke does.
    grants = revoke_grant(grants, frozenset({"get"}), ("records", None))
    assert grants == (Grant(frozenset({"get", "put"})),)
    grants = revoke_grant(grants, frozenset({"get", "put"}), (None, None))
    assert grants == ()
