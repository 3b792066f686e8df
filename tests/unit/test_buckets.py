"""Bucket props and bucket types (pure): layering, Riak's validation rules, the type lifecycle."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from spinekv import buckets
from spinekv.buckets import (
    BadBucketChange,
    BucketMeta,
    BucketTypeConflict,
    Resolver,
    UnknownBucketType,
)
from spinekv.config import ConfigError, parse_config
from spinekv.props import BucketProps, PropsError

MEMBERS = ["n1", "n2", "n3"]
NOW = 1_000_000


def make_config(extra: dict | None = None):
    data = {
        "cluster": {"n_val": 3},
        "bucket_defaults": {"r": "quorum"},
        "bucket_types": {"records": {}},
        "node": [
            {"name": name, "http_port": 1000 + i, "peer_port": 2000 + i}
            for i, name in enumerate(MEMBERS)
        ],
        **(extra or {}),
    }
    return parse_config(data, Path("/tmp/cluster.toml"))


CONFIG = make_config()


def set_props(meta, type_name, bucket, changes, now=NOW, me="n1"):
    return buckets.set_bucket_props(CONFIG, meta, type_name, bucket, changes, now, me)


def effective(meta, type_name, bucket):
    return buckets.effective_props(CONFIG, meta, type_name, bucket)


def seen_by_all(meta, name):
    for node in MEMBERS:
        meta = buckets.acknowledge(meta, node, NOW)
    return meta


def active_type(name, changes):
    meta = buckets.create_type(CONFIG, BucketMeta(), name, changes, NOW, "n1")
    return buckets.activate_type(CONFIG, seen_by_all(meta, name), name, MEMBERS, NOW, "n1")


# ------------------------------------------------------------------ layering


def test_types_from_cluster_toml_and_unknown_types():
    meta = BucketMeta()
    default = effective(meta, "default", "b")
    assert default == CONFIG.bucket_defaults and default.allow_mult is False
    records = effective(meta, "records", "b")
    assert records.allow_mult is True and records.dvv_enabled is True
    assert effective(meta, "nope", "b") is None


def test_bucket_props_layer_over_the_type_and_reset_goes_back_to_it():
    meta = set_props(BucketMeta(), "default", "b", {"allow_mult": True, "r": 1})
    props = effective(meta, "default", "b")
    assert props.allow_mult is True and props.r == 1 and props.w == "quorum"
    assert effective(meta, "default", "other") == CONFIG.bucket_defaults
    # A second PUT adds to what the first set.
    meta = set_props(meta, "default", "b", {"n_val": 5}, now=NOW + 1)
    assert effective(meta, "default", "b").r == 1 and effective(meta, "default", "b").n_val == 5
    meta = buckets.reset_bucket_props(CONFIG, meta, "default", "b", NOW + 2, "n1")
    assert effective(meta, "default", "b") == CONFIG.bucket_defaults


def test_a_type_update_reaches_buckets_that_do_not_override_the_prop():
    meta = set_props(active_type("t", {}), "t", "b", {"r": "one"})
    meta = buckets.update_type(CONFIG, meta, "t", {"notfound_ok": False}, NOW + 1, "n2")
    props = effective(meta, "t", "b")
    assert props.notfound_ok is False and props.r == "one"


def test_rendered_props_are_riaks_shape():
    meta = set_props(active_type("t", {"n_val": 2}), "t", "b", {"precommit": [{"name": "hook"}]})
    shown = buckets.render_bucket(meta, "t", "b", effective(meta, "t", "b"))
    assert shown["name"] == "b" and shown["bucket_type"] == "t"
    assert shown["active"] is True and shown["claimant"] == "n1"
    assert shown["n_val"] == 2 and shown["precommit"] == [{"name": "hook"}]
    assert shown["chash_keyfun"] == {"mod": "riak_core_util", "fun": "chash_std_keyfun"}
    assert "datatype" not in shown  # unset optional props are left out, as Riak does
    default = buckets.render_bucket(meta, "default", "b", CONFIG.bucket_defaults)
    assert "bucket_type" not in default and "active" not in default


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("changes", "bad"),
    [
        ({"n_val": 0}, {"n_val"}),
        ({"n_val": "3"}, {"n_val"}),
        ({"allow_mult": "maybe"}, {"allow_mult"}),
        ({"r": "most", "pw": -1}, {"r", "pw"}),
        ({"w": 0}, {"w"}),
        ({"r": "default"}, {"r"}),  # a bucket prop is what "default" means; it cannot be it
        ({"r": 4}, {"r"}),  # more than n_val
        ({"colour": "blue"}, {"colour"}),
        (
            {"chash_keyfun": {"mod": "riak_core_util", "fun": "chash_bucketonly_keyfun"}},
            {"chash_keyfun"},
        ),
        ({"precommit": [{"mod": "m"}]}, {"precommit"}),
        ({"consistent": True}, {"consistent"}),
        ({"datatype": "map"}, {"datatype"}),  # not on the default type
        ({"write_once": True}, {"write_once"}),  # fixed when a type is created
        ({"n_val": 0, "write_once": True}, {"n_val", "write_once"}),
        ({"name": "another"}, {"name"}),
        ({"delete_mode": "later"}, {"delete_mode"}),
        ({"delete_mode": -1}, {"delete_mode"}),
        ({"delete_mode": 2**32}, {"delete_mode"}),
        ({"delete_mode": True}, {"delete_mode"}),
    ],
)
def test_bad_props_are_refused_naming_each(changes, bad):
    with pytest.raises(PropsError) as caught:
        set_props(BucketMeta(), "default", "b", changes)
    assert set(caught.value.errors) == bad


def test_riak_value_forms_are_accepted():
    meta = set_props(
        BucketMeta(),
        "default",
        "b",
        {"allow_mult": "True", "r": "ONE", "dw": 0, "name": "b", "search_index": "idx"},
    )
    props = effective(meta, "default", "b")
    assert props.allow_mult is True and props.r == "one" and props.dw == 0
    assert props.search_index == "idx"


@pytest.mark.parametrize(
    ("given", "held"),
    [("keep", "keep"), ("Immediate", "immediate"), (0, 0), (250, 250), ("1500", 1500)],
)
def test_delete_mode_is_keep_immediate_or_a_delay_in_ms(given, held):
    assert effective(BucketMeta(), "default", "b").delete_mode == 3000  # Riak's default
    meta = set_props(BucketMeta(), "default", "b", {"delete_mode": given})
    assert effective(meta, "default", "b").delete_mode == held


def test_lowering_n_val_below_a_quorum_is_refused():
    meta = set_props(BucketMeta(), "default", "b", {"r": 3})
    with pytest.raises(PropsError, match=r"r=3 is more than n_val=2"):
        set_props(meta, "default", "b", {"n_val": 2}, now=NOW + 1)


def test_last_write_wins_with_dvv_is_refused_as_riak_does():
    # allow_mult with last_write_wins is allowed by Riak; dvv_enabled with it is not.
    set_props(BucketMeta(), "default", "b", {"last_write_wins": True, "allow_mult": True})
    meta = active_type("t", {})  # created types have dvv_enabled=true
    with pytest.raises(PropsError, match="dvv_enabled must be false"):
        set_props(meta, "t", "b", {"last_write_wins": True})
    meta = set_props(meta, "t", "b", {"last_write_wins": True, "dvv_enabled": False})
    assert effective(meta, "t", "b").last_write_wins is True


def test_datatype_types_need_allow_mult_and_keep_their_datatype():
    with pytest.raises(PropsError, match="allow_mult=true"):
        buckets.create_type(
            CONFIG, BucketMeta(), "maps", {"datatype": "map", "allow_mult": False}, NOW, "n1"
        )
    with pytest.raises(PropsError, match="not supported"):
        buckets.create_type(CONFIG, BucketMeta(), "maps", {"datatype": "tree"}, NOW, "n1")
    meta = active_type("maps", {"datatype": "map"})
    for changes in ({"datatype": "set"}, {"allow_mult": False}):
        with pytest.raises(PropsError):
            buckets.update_type(CONFIG, meta, "maps", changes, NOW + 1, "n1")
        with pytest.raises(PropsError):
            set_props(meta, "maps", "b", changes, now=NOW + 1)
    # Repeating the same datatype is not a change.
    buckets.update_type(CONFIG, meta, "maps", {"datatype": "map"}, NOW + 1, "n1")


def test_write_once_is_fixed_at_creation():
    meta = active_type("once", {"write_once": True})
    assert effective(meta, "once", "b").write_once is True
    with pytest.raises(PropsError, match="write_once"):
        buckets.update_type(CONFIG, meta, "once", {"write_once": False}, NOW + 1, "n1")


def test_changes_to_unknown_types_are_refused():
    for change in (
        lambda: set_props(BucketMeta(), "nope", "b", {"n_val": 2}),
        lambda: buckets.reset_bucket_props(CONFIG, BucketMeta(), "nope", "b", NOW, "n1"),
        lambda: buckets.update_type(CONFIG, BucketMeta(), "nope", {}, NOW, "n1"),
    ):
        with pytest.raises(UnknownBucketType):
            change()


# ------------------------------------------------------------------ bucket types


def test_type_lifecycle_created_ready_active():
    meta = buckets.create_type(CONFIG, BucketMeta(), "t", {"n_val": 2}, NOW, "n1")
    assert buckets.type_status(CONFIG, meta, "t", MEMBERS) == buckets.CREATED
    assert buckets.unacknowledged(meta, "t", MEMBERS) == ["n2", "n3"]
    # Not active: unknown to the data path, on every node.
    assert Resolver(CONFIG, lambda: meta)("t", "b") is None
    with pytest.raises(BucketTypeConflict, match="not yet seen by n2, n3"):
        buckets.activate_type(CONFIG, meta, "t", MEMBERS, NOW, "n1")

    meta = buckets.acknowledge(meta, "n2", NOW)
    assert buckets.unacknowledged(meta, "t", MEMBERS) == ["n3"]
    meta = buckets.acknowledge(meta, "n3", NOW)
    assert buckets.type_status(CONFIG, meta, "t", MEMBERS) == buckets.READY
    meta = buckets.activate_type(CONFIG, meta, "t", MEMBERS, NOW + 1, "n2")
    assert buckets.type_status(CONFIG, meta, "t", MEMBERS) == buckets.ACTIVE
    props = Resolver(CONFIG, lambda: meta)("t", "b")
    assert props.n_val == 2 and props.allow_mult is True
    assert buckets.type_names(CONFIG, meta) == ["default", "records", "t"]


def test_recreating_an_inactive_type_needs_everyone_to_see_the_new_version():
    meta = seen_by_all(buckets.create_type(CONFIG, BucketMeta(), "t", {}, NOW, "n1"), "t")
    meta = buckets.create_type(CONFIG, meta, "t", {"n_val": 1}, NOW + 1, "n1")
    assert buckets.type_status(CONFIG, meta, "t", MEMBERS) == buckets.CREATED
    meta = buckets.activate_type(CONFIG, seen_by_all(meta, "t"), "t", MEMBERS, NOW + 2, "n1")
    assert effective(meta, "t", "b").n_val == 1


def test_what_cannot_be_done_to_types():
    meta = active_type("t", {})
    conflict, bad, unknown = BucketTypeConflict, BadBucketChange, UnknownBucketType
    refusals = [
        (
            lambda: buckets.create_type(CONFIG, meta, "t", {}, NOW, "n1"),
            conflict,
            "already active",
        ),
        (
            lambda: buckets.create_type(CONFIG, meta, "records", {}, NOW, "n1"),
            conflict,
            "active",
        ),
        (
            lambda: buckets.create_type(CONFIG, meta, "default", {}, NOW, "n1"),
            conflict,
            "default",
        ),
        (
            lambda: buckets.create_type(CONFIG, meta, "a/b", {}, NOW, "n1"),
            bad,
            "not a valid",
        ),
        (
            lambda: buckets.update_type(CONFIG, meta, "default", {}, NOW, "n1"),
            bad,
            "defaults",
        ),
        (
            lambda: buckets.activate_type(CONFIG, meta, "x", MEMBERS, NOW, "n1"),
            unknown,
            "not an",
        ),
    ]
    inactive = buckets.create_type(CONFIG, meta, "later", {}, NOW, "n1")
    refusals.append(
        (
            lambda: buckets.update_type(CONFIG, inactive, "later", {}, NOW, "n1"),
            conflict,
            "not active",
        )
    )
    for change, refusal, reason in refusals:
        with pytest.raises(refusal, match=reason):
            change()


def test_a_type_from_cluster_toml_can_be_updated():
    meta = buckets.update_type(CONFIG, BucketMeta(), "records", {"n_val": 5}, NOW, "n1")
    assert effective(meta, "records", "b").n_val == 5
    assert effective(meta, "records", "b").allow_mult is True


def test_create_ignores_read_only_props_of_a_copied_get_body():
    meta = buckets.create_type(
        CONFIG, BucketMeta(), "t", {"active": True, "claimant": "x", "n_val": 2}, NOW, "n1"
    )
    assert buckets.type_status(CONFIG, meta, "t", ["n1"]) == buckets.READY  # not active
    assert buckets.claimant(meta, "t") == "n1"


# ------------------------------------------------------------------ state, codec, resolver


def test_a_node_stamps_its_change_after_what_it_knew_even_with_a_slow_clock():
    meta = set_props(BucketMeta(), "default", "b", {"n_val": 5}, now=NOW, me="n2")
    meta = set_props(meta, "default", "b", {"n_val": 4}, now=NOW - 500, me="n1")
    assert effective(meta, "default", "b").n_val == 4
    assert meta.get(buckets.BUCKET, "default", "b").stamp == NOW + 1


def test_encode_decode_round_trip_and_garbage_is_refused():
    meta = set_props(active_type("t", {"n_val": 2}), "t", "b", {"r": 1})
    assert buckets.decode(buckets.encode(meta)) == meta
    for garbage in (
        b"\x93garbage",
        msgpack.packb([2, []]),
        msgpack.packb([1, [["what", "t", "", 1, "n1", None]]]),
        msgpack.packb([1, [["type", "t", "", 1, "n1", {"props": 3}]]]),
        msgpack.packb([1, [["bucket", "t", "b", "soon", "n1", None]]]),
    ):
        with pytest.raises(ValueError, match="malformed bucket metadata"):
            buckets.decode(garbage)


def test_a_prop_unknown_to_this_node_is_left_out_not_fatal():
    # As a newer peer might gossip a prop this version does not have.
    meta = BucketMeta().put(("bucket", "default", "b"), {"n_val": 2, "shiny": 1}, NOW, "n9")
    assert effective(meta, "default", "b") == BucketProps(n_val=2)


def test_resolver_follows_the_current_metadata():
    current = [BucketMeta()]
    resolve = Resolver(CONFIG, lambda: current[0])
    assert resolve("default", "b").allow_mult is False
    current[0] = set_props(current[0], "default", "b", {"allow_mult": True})
    assert resolve("default", "b").allow_mult is True


def test_cluster_toml_props_follow_the_same_rules():
    types = make_config({"bucket_types": {"maps": {"datatype": "map", "n_val": 2}}})
    assert types.bucket_type("maps").datatype == "map"
    for extra, reason in (
        ({"bucket_defaults": {"datatype": "map"}}, "bucket_defaults.datatype"),
        ({"bucket_defaults": {"r": 5}}, "more than n_val"),
        ({"bucket_types": {"x": {"allow_mult": False, "datatype": "set"}}}, "allow_mult"),
        ({"bucket_types": {"x": {"last_write_wins": True}}}, "dvv_enabled"),
    ):
        with pytest.raises(ConfigError, match=reason):
            make_config(extra)


# ------------------------------------------------------------------ the record API's type


@pytest.mark.parametrize(
    "changes, refused",
    [
        ({"allow_mult": False}, "allow_mult"),
        ({"n_val": 2}, "n_val"),
        ({"last_write_wins": True, "dvv_enabled": False}, "last_write_wins"),
    ],
)
def test_the_record_types_props_cannot_be_changed_to_what_the_record_layer_refuses(
    changes, refused
):
    for change in (
        lambda: buckets.update_type(CONFIG, BucketMeta(), "records", changes, NOW, "n1"),
        lambda: set_props(BucketMeta(), "records", "patients", changes),
    ):
        with pytest.raises(PropsError) as refusal:
            change()
        assert refused in refusal.value.errors, refusal.value.errors
    # Any other type may have them.
    meta = active_type("t", {})
    assert effective(set_props(meta, "t", "b", changes), "t", "b") is not None


def test_the_record_type_cannot_be_created_at_runtime_without_siblings():
    config = make_config({"bucket_types": {}})
    with pytest.raises(PropsError, match="allow_mult must stay true"):
        buckets.create_type(config, BucketMeta(), "records", {"allow_mult": False}, NOW, "n1")
    # Allowed changes still go through, a larger n_val included.
    meta = buckets.update_type(CONFIG, BucketMeta(), "records", {"n_val": 4}, NOW, "n1")
    assert effective(meta, "records", "b").n_val == 4


def test_user_entries_travel_in_the_metadata_codec():
    meta = BucketMeta().put((buckets.USER, "", "alice"), {"role": None, "grants": []}, NOW, "n1")
    meta = meta.put((buckets.USER, "", "bob"), None, NOW, "n1")
    assert buckets.decode(buckets.encode(meta)) == meta
    bad = msgpack.packb([1, [["user", "", "carol", NOW, "n1", "not a user"]]])
    with pytest.raises(ValueError, match="bad user entry"):
        buckets.decode(bad)
