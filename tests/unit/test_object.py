"""Object codec, causal context encoding and allow_mult behaviour."""

from __future__ import annotations

import pytest

from spinekv import dvv
from spinekv import object as riak_object
from spinekv.object import CodecError, Content


def test_encode_decode_roundtrip_with_metadata_and_siblings():
    a = riak_object.write(
        None, {}, Content(b"v1", "text/plain", 10, meta=(("colour", "red"),)), "a", allow_mult=True
    )
    b = riak_object.write(a, {}, Content(b"v2", "application/json", 11), "b", allow_mult=True)
    assert riak_object.decode(riak_object.encode(b)) == b
    assert len(riak_object.contents(b)) == 2


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", b"\x92\x02\x90", b"garbage"])
def test_decode_rejects_malformed_bytes(data):
    with pytest.raises(CodecError):
        riak_object.decode(data)


@pytest.mark.parametrize(
    "data", [b"", b"\xc1", b"\x92\x01", b"\x92\x02\x90", b"\x92\x01\x91\x93\xa1a\x01\x91\x90"]
)
def test_deleted_flags_rejects_malformed_bytes(data):
    with pytest.raises(CodecError):
        riak_object.deleted_flags(data)


def test_encoded_tombstone_tells_deletes_from_values_and_siblings():
    live = riak_object.write(None, {}, Content(b"v"), "a", allow_mult=True)
    dead = riak_object.write(
        live, riak_object.context(live), riak_object.tombstone(5), "a", allow_mult=True
    )
    both = riak_object.write(live, {}, riak_object.tombstone(6), "b", allow_mult=True)
    assert not riak_object.is_encoded_tombstone(riak_object.encode(live))
    assert riak_object.is_encoded_tombstone(riak_object.encode(dead))
    assert riak_object.deleted_flags(riak_object.encode(both)) == [False, True]
    assert not riak_object.is_encoded_tombstone(riak_object.encode(both))


def test_context_roundtrip_and_rejects_garbage():
    vv = {"abc": 3, "def": 1}
    assert riak_object.decode_context(riak_object.encode_context(vv)) == vv
    for bad in ["not base64!", "aGVsbG8=", riak_object.encode_context({}) + "x"]:
        with pytest.raises(CodecError):
            riak_object.decode_context(bad)


def test_allow_mult_false_keeps_newest_by_timestamp():
    a = riak_object.write(None, {}, Content(b"old", last_modified_us=1), "a", allow_mult=False)
    b = riak_object.write(None, {}, Content(b"new", last_modified_us=2), "b", allow_mult=False)
    merged = riak_object.merge(a, b, allow_mult=False)
    assert [c.value for c in riak_object.contents(merged)] == [b"new"]
    assert riak_object.merge(b, a, allow_mult=False) == merged


def test_allow_mult_true_keeps_concurrent_siblings():
    a = riak_object.write(None, {}, Content(b"x", last_modified_us=1), "a", allow_mult=True)
    b = riak_object.write(None, {}, Content(b"y", last_modified_us=2), "b", allow_mult=True)
    merged = riak_object.merge(a, b, allow_mult=True)
    assert sorted(c.value for c in riak_object.contents(merged)) == [b"x", b"y"]


def test_last_write_wins_ignores_stale_context():
    a = riak_object.write(None, {}, Content(b"x", last_modified_us=1), "a", allow_mult=False)
    b = riak_object.write(
        a, {}, Content(b"y", last_modified_us=2), "a", allow_mult=False, last_write_wins=True
    )
    assert [c.value for c in riak_object.contents(b)] == [b"y"]


def test_delete_writes_a_tombstone_that_supersedes_what_it_saw():
    a = riak_object.write(None, {}, Content(b"x"), "a", allow_mult=True)
    dead = riak_object.write(a, dvv.join(a), riak_object.tombstone(9), "b", allow_mult=True)
    assert riak_object.is_tombstone(dead)
    assert riak_object.live_contents(dead) == []
    # A concurrent write the delete never saw survives it as a sibling.
    c = riak_object.write(a, dvv.join(a), Content(b"z"), "c", allow_mult=True)
    merged = riak_object.merge(dead, c, allow_mult=True)
    assert [x.value for x in riak_object.live_contents(merged)] == [b"z"]


def test_vtag_is_stable_and_distinguishes_siblings():
    assert Content(b"x", last_modified_us=1).vtag == Content(b"x", last_modified_us=1).vtag
    assert Content(b"x", last_modified_us=1).vtag != Content(b"x", last_modified_us=2).vtag
