"""Users at runtime (pure): seeded from cluster.toml, changed in the gossiped metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from spinekv.buckets import BucketMeta
from spinekv.config import Grant, parse_config
from spinekv.security import users
from spinekv.security.secrets import hash_secret

NOW = 1_000_000
TOKEN_HASH = hash_secret("t-alice")
CONFIG = parse_config(
    {
        "bucket_types": {"records": {}},
        "user": [
            {"name": "local", "grants": [{"on": "any", "permissions": ["get"]}]},
            {"name": "seed", "role": "clinical", "token_hash": TOKEN_HASH},
        ],
        "node": [{"name": "n1", "http_port": 1000, "peer_port": 2000}],
    },
    Path("/tmp/cluster.toml"),
)


def test_the_metadata_overlays_cluster_toml_and_a_deleted_seed_user_stays_deleted():
    meta = users.add_user(CONFIG, BucketMeta(), "alice", "admin", TOKEN_HASH, None, NOW, "n1")
    meta = users.delete_user(CONFIG, meta, "seed", NOW, "n2")
    found = users.effective_users(CONFIG, meta)
    assert sorted(found) == ["alice", "local"]
    assert found["alice"].role == "admin" and found["alice"].token_hash == TOKEN_HASH
    # Gossip from a node that never saw the delete does not bring the seed user back.
    assert "seed" not in users.effective_users(CONFIG, meta.merge(BucketMeta()))


def test_grants_and_revokes_on_a_seed_user_are_kept_in_the_metadata():
    meta = users.grant(
        CONFIG, BucketMeta(), "local", frozenset({"get"}), ("records", None), NOW, "n1"
    )
    local = users.effective_users(CONFIG, meta)["local"]
    assert set(local.grants) == {
        Grant(frozenset({"get"})),
        Grant(frozenset({"get"}), "records"),
    }
    meta = users.revoke(CONFIG, meta, "local", frozenset({"get"}), (None, None), NOW + 1, "n1")
    assert users.effective_users(CONFIG, meta)["local"].grants == (
        Grant(frozenset({"get"}), "records"),
    )


@pytest.mark.parametrize(
    "name, role, token, refused",
    [
        ("local", None, None, users.UserExists),
        ("all", None, None, users.UserError),
        ("", None, None, users.UserError),
        ("bob", "root", None, users.UserError),
        ("bob", None, "plain-text-token", users.UserError),
    ],
)
def test_bad_additions_are_refused(name, role, token, refused):
    with pytest.raises(refused):
        users.add_user(CONFIG, BucketMeta(), name, role, token, None, NOW, "n1")


def test_changing_a_user_that_does_not_exist_is_refused():
    for change in (
        lambda: users.delete_user(CONFIG, BucketMeta(), "nobody", NOW, "n1"),
        lambda: users.grant(
            CONFIG, BucketMeta(), "nobody", frozenset({"get"}), (None, None), NOW, "n1"
        ),
    ):
        with pytest.raises(users.UnknownUser):
            change()


def test_rendering_shows_which_secrets_are_set_never_the_hashes():
    shown = users.render(users.effective_users(CONFIG, BucketMeta())["seed"])
    assert shown == {
        "name": "seed",
        "role": "clinical",
        "grants": [],
        "token": True,
        "password": False,
    }
    assert "scrypt" not in repr(shown)


def test_the_user_set_is_worked_out_again_only_when_the_metadata_changes():
    current = [BucketMeta()]
    resolver = users.Users(CONFIG, lambda: current[0])
    first = resolver()
    assert resolver() is first
    current[0] = users.add_user(CONFIG, current[0], "bob", None, None, None, NOW, "n1")
    assert "bob" in resolver()


def test_demo_users_are_found_by_their_documented_tokens():
    demo = users.effective_users(CONFIG, BucketMeta())
    assert users.demo_users(demo, ("t-alice", "other")) == ["seed"]
    assert users.demo_users(demo, ("other",)) == []
