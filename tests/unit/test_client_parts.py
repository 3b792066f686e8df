"""The Python client's pure parts: the node pool, paths, header and body parsing, resolvers."""

from __future__ import annotations

import json
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spinekv import (
    AsyncClient,
    BadRequest,
    Conflict,
    NotFound,
    Obj,
    PreconditionFailed,
    QuorumUnavailable,
    RequestTimeout,
    Sibling,
    SiblingsError,
    SpinekvError,
    Unreachable,
    last_written_resolver,
)
from spinekv.client import codec
from spinekv.client.errors import ServerError, error_for
from spinekv.client.nodes import NodePool
from spinekv.client.objects import apply_resolver


def test_pool_goes_round_robin_and_prefers_a_node_when_asked():
    pool = NodePool(["a", "b", "c"])
    assert [pool.order(0)[0] for _ in range(4)] == ["a", "b", "c", "a"]
    assert pool.order(0) == ["b", "c", "a"]
    preferring = NodePool(["a", "b", "c"], prefer="b")
    assert preferring.order(0) == preferring.order(1) == ["b", "c", "a"]


def test_pool_avoids_a_failed_node_for_a_while_but_keeps_it_as_last_resort():
    pool = NodePool(["a", "b", "c"], prefer="a", avoid_for=5.0)
    pool.failed("a", now=100.0)
    assert pool.order(101.0) == ["b", "c", "a"]
    assert pool.avoided(101.0) == ["a"]
    pool.failed("b", now=102.0)
    # Both avoided: the one that comes back sooner is tried first.
    assert pool.order(103.0) == ["c", "a", "b"]
    assert pool.order(105.5) == ["a", "c", "b"]  # a's time is up
    pool.succeeded("b")
    assert pool.order(105.5) == ["a", "b", "c"]


def test_pool_refuses_bad_node_lists():
    with pytest.raises(ValueError, match="at least one"):
        NodePool([])
    with pytest.raises(ValueError, match="twice"):
        NodePool(["a", "a"])
    with pytest.raises(ValueError, match="not in"):
        NodePool(["a"], prefer="b")


def test_a_client_trusts_a_ca_file_or_a_whole_ssl_context_not_both(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        AsyncClient(["https://a"], ca=tmp_path / "ca.crt", ssl=ssl.create_default_context())
    # A CA file that is not there fails at once, not at the first request.
    with pytest.raises(FileNotFoundError):
        AsyncClient(["https://a"], ca=tmp_path / "missing.crt")


def test_paths_quote_every_segment_and_use_types_only_when_not_default():
    assert codec.object_path("default", "b", "k/1 x") == "/buckets/b/keys/k%2F1%20x"
    assert codec.object_path("records", "b", None) == "/types/records/buckets/b/keys"
    assert codec.index_path("default", "b", "$key", "a", "z") == "/buckets/b/index/%24key/a/z"
    assert codec.index_path("t", "b", "age_int", 5, None) == "/types/t/buckets/b/index/age_int/5"
    assert codec.buckets_path("t") == "/types/t/buckets"
    assert codec.counter_path("b", "c") == "/buckets/b/counters/c"
    assert codec.query({"r": 2, "returnbody": True, "pr": None, "w": "all"}) == {
        "r": "2",
        "returnbody": "true",
        "w": "all",
    }


def test_object_headers_round_trip_through_sibling_parsing():
    sibling = Sibling(
        value=b"v",
        content_type="text/plain",
        charset="utf-8",
        meta={"author": "ann"},
        indexes={("name_bin", "smith"), ("name_bin", "jones"), ("age_int", 42)},
        links=[("people", "p 1", "friend"), ("people", "p2", "spouse")],
    )
    headers = codec.content_headers(sibling)
    assert ("X-Riak-Index-age_int", "42") in headers
    assert ("X-Riak-Index-name_bin", "jones, smith") in headers
    back = codec.sibling_from([*headers, ("ETag", '"abc"')], b"v")
    assert back is not None
    assert back.content_type == "text/plain" and back.charset == "utf-8"
    assert back.meta == {"author": "ann"}
    assert back.indexes == sibling.indexes  # _int values come back as integers
    assert back.links == sibling.links
    assert back.etag == "abc"


def test_link_parsing_takes_riak_forms_and_skips_rel_up():
    header = (
        '</buckets/b>; rel="up", </buckets/b/keys/k%201>; riaktag="t1", '
        '</types/x/buckets/c/keys/k2>; riaktag="t2", </riak/old/k3>; riaktag="t3"'
    )
    expected = [("b", "k 1", "t1"), ("c", "k2", "t2"), ("old", "k3", "t3")]
    assert codec.parse_links([header]) == expected


def test_a_deleted_sibling_is_not_a_sibling_and_dates_parse():
    assert codec.sibling_from([("X-Riak-Deleted", "true")], b"") is None
    s = codec.sibling_from([("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")], b"")
    assert s is not None and s.last_modified == 784111777.0
    bad = codec.sibling_from([("Last-Modified", "yesterday")], b"")
    assert bad is not None and bad.last_modified is None


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.lists(st.text(max_size=6), max_size=4), max_size=5),
    cut=st.lists(st.integers(min_value=1, max_value=5), max_size=60),
)
def test_json_stream_splits_concatenated_objects_at_any_chunking(keys, cut):
    body = "".join(json.dumps({"keys": k}) for k in keys).encode()
    stream, found, i = codec.JsonStream(), [], 0
    for size in [*cut, len(body)]:
        found += stream.feed(body[i : i + size])
        i += size
    stream.close()
    assert [item["keys"] for item in found] == keys


def test_json_stream_reports_a_truncated_body():
    stream = codec.JsonStream()
    assert stream.feed(b'{"keys": ["a"]}{"keys": [') == [{"keys": ["a"]}]
    with pytest.raises(ServerError, match="inside a JSON object"):
        stream.close()


def test_error_classes_follow_the_status_and_name_the_quorum():
    assert isinstance(error_for(400, "r=7"), BadRequest)
    assert isinstance(error_for(413, "too big"), BadRequest)
    assert isinstance(error_for(404, "gone"), NotFound)
    assert isinstance(error_for(409, "allow_mult"), Conflict)
    assert isinstance(error_for(412, "etag"), PreconditionFailed)
    assert isinstance(error_for(500, "oops"), ServerError)
    err = error_for(503, "pw=3 unsatisfied: 2 primary acknowledgements")
    assert isinstance(err, QuorumUnavailable) and err.quorum == "pw" and err.status == 503
    assert error_for(503, "something else").quorum is None
    assert issubclass(RequestTimeout, Unreachable) and issubclass(Unreachable, SpinekvError)


def test_resolvers_pick_a_sibling_or_merge_values_keeping_newest_metadata():
    old = Sibling(b"old", "text/plain", meta={"v": "1"}, etag="a", last_modified=10.0)
    new = Sibling(b"new", "text/plain", meta={"v": "2"}, etag="b", last_modified=20.0)
    assert last_written_resolver([old, new]) is new
    merged = apply_resolver([old, new], lambda ss: b"+".join(sorted(s.value for s in ss)))
    assert merged.value == b"new+old" and merged.meta == {"v": "2"} and merged.etag is None
    merged.meta["v"] = "3"
    assert new.meta == {"v": "2"}  # the merged sibling does not share containers
    with pytest.raises(TypeError, match="must return"):
        apply_resolver([old, new], lambda ss: 42)


def test_obj_shortcuts_need_a_single_sibling():
    obj = Obj("b", "k", siblings=[Sibling(b"1"), Sibling(b"2")], context="ctx")
    with pytest.raises(SiblingsError) as err:
        _ = obj.value
    assert err.value.count == 2
    with pytest.raises(SiblingsError):
        obj.value = b"3"
    obj.resolve(lambda ss: ss[1])
    assert obj.value == b"2" and obj.context == "ctx" == obj.vclock
    empty = Obj("b", "k")
    assert empty.value is None and empty.siblings == []
    empty.value = "text"
    assert (empty.value, empty.content_type, empty.charset) == (b"text", "text/plain", "utf-8")
    empty.add_index("a_bin", "x").add_index("a_bin", "y").add_index("b_int", 1)
    empty.remove_index("a_bin", "x")
    assert empty.indexes == {("a_bin", "y"), ("b_int", 1)}
    empty.remove_index("a_bin")
    assert empty.indexes == {("b_int", 1)}
    empty.json = {"n": 1}
    assert empty.json == {"n": 1} and empty.content_type == "application/json"
