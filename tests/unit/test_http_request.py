"""The one request-parsing module: flags, listing modes, timeouts, quorums, path names, errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spinekv.buckets import BadBucketChange, BucketTypeConflict, UnknownBucketType
from spinekv.http.request import (
    MAX_TIMEOUT_MS,
    HttpError,
    bucket_flag,
    check_params,
    delete_options,
    flag,
    get_options,
    http_error,
    listing,
    put_options,
    riak_unquote,
    timeout,
)
from spinekv.index import IndexError_
from spinekv.props import BucketProps, PropsError
from spinekv.quorum import QuorumValueError

# ---------------------------------------------------------------- flags


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("TRUE", True), ("True", True), ("false", False), ("FALSE", False)],
)
def test_flags_are_true_or_false_in_any_case_as_riak_lowers_them(raw, value):
    assert flag({"returnbody": raw}, "returnbody") is value


def test_an_absent_flag_is_false():
    assert flag({}, "stream") is False


@pytest.mark.parametrize("raw", ["1", "0", "yes", "", "default", "true "])
def test_anything_else_is_refused_not_read_as_false(raw):
    with pytest.raises(HttpError) as err:
        flag({"return_terms": raw}, "return_terms")
    assert err.value.status == 400
    assert "return_terms query parameter must be true or false" in err.value.reason


@pytest.mark.parametrize(
    ("query", "value"),
    [({}, None), ({"x": "default"}, None), ({"x": "DEFAULT"}, None), ({"x": "True"}, True)],
)
def test_bucket_flags_take_default_as_the_buckets_value(query, value):
    assert bucket_flag(query, "x") is value
    with pytest.raises(HttpError, match="or default"):
        bucket_flag({"x": "1"}, "x")


@pytest.mark.parametrize(
    ("raw", "mode"), [("true", "true"), ("TRUE", "true"), ("Stream", "stream")]
)
def test_listing_modes_in_any_case(raw, mode):
    assert listing({"keys": raw}, "keys") == mode


@pytest.mark.parametrize("query", [{}, {"buckets": "false"}, {"buckets": "all"}])
def test_listing_needs_true_or_stream(query):
    with pytest.raises(HttpError, match="buckets=true or buckets=stream is required"):
        listing(query, "buckets")


# ---------------------------------------------------------------- timeout


@pytest.mark.parametrize(
    ("query", "seconds"),
    [
        ({}, 2.5),
        ({"timeout": "0"}, 2.5),  # riak_index's "no timeout": the node's own
        ({"timeout": "1"}, 0.001),
        ({"timeout": "60000"}, 60.0),
        ({"timeout": str(MAX_TIMEOUT_MS)}, MAX_TIMEOUT_MS / 1000),
    ],
)
def test_timeout_is_milliseconds_and_zero_is_the_default(query, seconds):
    assert timeout(query, default_ms=2500) == seconds


@pytest.mark.parametrize(
    "raw", ["-5", "1.5", "soon", "", "\u00b2", str(MAX_TIMEOUT_MS + 1), "9" * 40, " 5"]
)
def test_bad_timeouts_are_refused(raw):
    with pytest.raises(HttpError, match="Bad timeout value") as err:
        timeout({"timeout": raw}, default_ms=1000)
    assert err.value.status == 400


# ---------------------------------------------------------------- quorums

PROPS = BucketProps(n_val=3)


def test_options_take_the_request_over_the_bucket():
    query = {"r": "one", "pr": "quorum", "notfound_ok": "false", "timeout": "700"}
    opts = get_options(query, PROPS, 5000)
    assert (opts.r, opts.pr, opts.notfound_ok, opts.basic_quorum, opts.timeout) == (
        1,
        2,
        False,
        PROPS.basic_quorum,
        0.7,
    )
    assert put_options({"w": "1", "dw": "all"}, PROPS, 5000).w == 3  # w is never below dw
    read, write = delete_options({"rw": "all"}, PROPS, 5000)
    assert (read.r, write.w) == (3, 3)


@pytest.mark.parametrize(
    "query",
    [{"r": "lots"}, {"w": "1.5"}, {"sync_on_write": "sometimes"}, {"basic_quorum": "1"}],
)
def test_malformed_parameters_are_refused_before_anything_is_read(query):
    with pytest.raises(HttpError) as err:
        check_params(query, write=False)
    assert err.value.status == 400


def test_asis_is_refused_on_writes_only():
    check_params({"asis": "true"}, write=False)
    check_params({"asis": "default"}, write=True)
    with pytest.raises(HttpError, match="asis=true is not supported"):
        check_params({"asis": "TRUE"}, write=True)


# ---------------------------------------------------------------- path names


@pytest.mark.parametrize(
    ("segment", "decoded"),
    [("a+b", "a b"), ("a%20b", "a b"), ("a%2Bb", "a+b"), ("a%2Fb", "a/b"), ("caf%C3%A9", "café")],
)
def test_path_segments_decode_as_riak_does(segment, decoded):
    assert riak_unquote(segment) == decoded


def test_path_segment_that_is_not_utf8_is_refused():
    with pytest.raises(HttpError, match="not UTF-8"):
        riak_unquote("%FF")


@given(st.text(st.characters(codec="utf-8"), max_size=20))
def test_a_name_quoted_as_riaks_clients_quote_it_decodes_to_itself(name):
    from urllib.parse import quote_plus

    assert riak_unquote(quote_plus(name)) == name


# ---------------------------------------------------------------- errors at the edge


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (QuorumValueError("r=9 is out of range"), 400),
        (IndexError_("bad term"), 400),
        (BadBucketChange("'' is not a valid bucket name"), 400),
        (UnknownBucketType("unknown bucket type 'x'"), 404),
        (BucketTypeConflict("t is already active"), 409),
        (HttpError(413, "too big"), 413),
    ],
)
def test_pure_modules_refusals_get_their_status_at_the_edge(exc, status):
    error = http_error(exc)
    assert error is not None
    assert (error.status, error.reason) == (status, str(exc))


def test_bad_props_name_each_field_and_other_errors_are_not_refusals():
    error = http_error(PropsError({"n_val": "must be positive"}))
    assert error is not None and error.status == 400
    assert error.details == {"n_val": "must be positive"}
    assert http_error(ValueError("a bug")) is None
    assert http_error(KeyError("k")) is None
