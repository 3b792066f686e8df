"""Riak's object headers, pure: content types, indexes, links, Accept, dates and preconditions."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spinekv.http.request import HttpError
from spinekv.http.riakheaders import (
    LINK_FORM,
    Conditions,
    Version,
    check_conditions,
    content_headers,
    format_links,
    http_date,
    index_headers,
    multipart_body,
    parse_content_type,
    parse_http_date,
    parse_indexes,
    parse_links,
    parse_meta,
    prefers_multipart,
    text_value,
)
from spinekv.object import Content

# ---------------------------------------------------------------- content type


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("application/json", "application/json"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ('text/plain; charset="utf-8"', "text/plain; charset=utf-8"),  # the riak client quotes it
        ("text/plain;charset=latin1", "text/plain; charset=latin1"),
        ("text/plain; format=flowed; charset=utf-8", "text/plain; charset=utf-8"),
        ("multipart/mixed; boundary=xyz", "multipart/mixed"),  # Riak keeps only the charset
    ],
)
def test_content_type_keeps_media_type_and_charset(raw, stored):
    assert parse_content_type(raw) == stored


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (None, 400, "Missing Content-Type request header"),
        ("   ", 400, "Missing Content-Type request header"),
        ("plain", 415, '"plain" is not a valid media type for the Content-type header.'),
        ("/json", 415, "is not a valid media type"),
        ("text/plain/x", 415, "is not a valid media type"),
        ("text/pl\udcffain", 400, "not valid UTF-8"),
    ],
)
def test_content_type_missing_is_400_and_malformed_415(raw, status, reason):
    with pytest.raises(HttpError) as err:
        parse_content_type(raw)
    assert err.value.status == status
    assert reason in err.value.reason


# ---------------------------------------------------------------- user metadata


def test_meta_headers_keep_their_names_and_join_repeats():
    headers = [
        ("X-Riak-Meta-Author", "ann"),
        ("Content-Type", "text/plain"),
        ("x-riak-meta-author", "bob"),
        ("X-RIAK-META-Zone", "north"),
    ]
    assert parse_meta(headers) == (("Author", "ann, bob"), ("Zone", "north"))


def test_meta_that_is_not_utf8_is_refused():
    with pytest.raises(HttpError, match="X-Riak-Meta-A header is not valid UTF-8"):
        parse_meta([("X-Riak-Meta-A", "caf\udcff")])


# ---------------------------------------------------------------- indexes


def test_indexes_are_lowercased_typed_sorted_and_distinct():
    headers = [
        ("X-Riak-Index-Email_BIN", "b@x.org, a@x.org"),
        ("x-riak-index-age_int", "42"),
        ("X-Riak-Index-age_int", "-7, +3, 42"),
        ("X-Riak-Meta-Age_int", "not an index"),
    ]
    assert parse_indexes(headers) == (
        ("age_int", -7),
        ("age_int", 3),
        ("age_int", 42),
        ("email_bin", "a@x.org"),
        ("email_bin", "b@x.org"),
    )


def test_index_values_split_only_on_comma_and_space_as_riak_does():
    assert parse_indexes([("X-Riak-Index-tag_bin", "a,b, c")]) == (
        ("tag_bin", "a,b"),
        ("tag_bin", "c"),
    )
    assert parse_indexes([("X-Riak-Index-tag_bin", "")]) == (("tag_bin", ""),)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([("X-Riak-Index-age_int", "old")], "Could not parse field 'age_int', value 'old'."),
        ([("X-Riak-Index-age_int", "4.5")], "Could not parse field 'age_int', value '4.5'."),
        ([("X-Riak-Index-age_int", "")], "Could not parse field 'age_int', value ''."),
        ([("X-Riak-Index-age_int", "1,2")], "value '1,2'"),  # no space: one value
        ([("X-Riak-Index-age_int", "٣")], "value '٣'"),  # not an ASCII digit
        ([("X-Riak-Index-age_int", str(2**63))], "value '9223372036854775808'"),
        ([("X-Riak-Index-age_int", "9" * 5000)], "Could not parse field 'age_int'"),
        ([("X-Riak-Index-age", "1")], "Unknown field type for field: 'age'."),
        ([("X-Riak-Index-_bin", "1")], "Unknown field type for field: '_bin'."),
        ([("X-Riak-Index-$bucket", "b")], "Unknown field type for field: '$bucket'."),
        ([("X-Riak-Index-name_bin", "caf\udcff")], "not valid UTF-8"),
    ],
)
def test_bad_index_headers_are_refused_in_riaks_words(headers, reason):
    with pytest.raises(HttpError) as err:
        parse_indexes(headers)
    assert err.value.status == 400
    assert reason in err.value.reason


def test_every_bad_index_is_reported():
    with pytest.raises(HttpError) as err:
        parse_indexes([("X-Riak-Index-a_int", "x"), ("X-Riak-Index-b", "1")])
    assert err.value.reason.splitlines() == [
        "Could not parse field 'a_int', value 'x'.",
        "Unknown field type for field: 'b'.",
    ]


def test_integer_bounds_are_64_bit():
    low, high = str(-(2**63)), str(2**63 - 1)
    assert parse_indexes([("X-Riak-Index-n_int", f"{low}, {high}")]) == (
        ("n_int", -(2**63)),
        ("n_int", 2**63 - 1),
    )


def test_index_headers_are_one_per_index_with_values_comma_separated():
    indexes = (("age_int", 3), ("age_int", 42), ("email_bin", "a@x.org"))
    assert index_headers(indexes) == [
        ("X-Riak-Index-age_int", "3, 42"),
        ("X-Riak-Index-email_bin", "a@x.org"),
    ]


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9]{0,8}_(bin|int)", fullmatch=True),
        st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=4),
        max_size=4,
    )
)
def test_index_headers_parse_back_to_the_same_indexes(fields):
    indexes = tuple(
        sorted(
            {
                (name, value if name.endswith("_int") else f"v{value}")
                for name, values in fields.items()
                for value in values
            }
        )
    )
    assert parse_indexes(index_headers(indexes)) == indexes


# ---------------------------------------------------------------- links


def test_links_parse_in_order_and_the_up_link_is_implied():
    value = (
        '</buckets/people/keys/bob>; riaktag="friend", '
        '</buckets/people>; rel="up", '
        '</buckets/other%20b/keys/a+key%2Fx>;riaktag="best+friend"'
    )
    assert parse_links([value], "people") == (
        ("people", "bob", "friend"),
        ("other b", "a key/x", "best friend"),
    )
    # Several Link headers, and empty pieces between commas, as Riak's tokenizer skips them.
    assert parse_links(['</buckets/b/keys/k>; riaktag="t",,', ""], "b") == (("b", "k", "t"),)


@pytest.mark.parametrize(
    "value",
    [
        "nonsense",
        '</buckets/b/keys/k>; rel="friend"',
        '</buckets/b/keys/k>; riaktag=""',
        '</buckets//keys/k>; riaktag="t"',
        '</types/records/buckets/b/keys/k>; riaktag="t"',  # Riak parses only the /buckets form
        '</buckets/elsewhere>; rel="up"',  # the only bucket link allowed is the object's own
        '</buckets/b>; rel="down"',
        '</buckets/b>; rel="up", </buckets/b>; rel="up"',
        '</buckets/b/keys/k>; riaktag="t", ',  # a blank piece is not a link
        '</buckets/b/keys/%FF>; riaktag="t"',
        '</buckets/b/keys/k>; riaktag="\udcff"',
        "<" * 5000,
    ],
)
def test_malformed_links_are_refused_with_riaks_form(value):
    with pytest.raises(HttpError) as err:
        parse_links([value], "b")
    assert err.value.status == 400
    assert err.value.reason == LINK_FORM or "not valid UTF-8" in err.value.reason


def test_links_format_with_the_up_link_last():
    assert format_links("my bucket", [("b", "k/1", "a tag")]) == (
        '</buckets/b/keys/k%2F1>; riaktag="a+tag", </buckets/my+bucket>; rel="up"'
    )
    assert format_links("b", []) == '</buckets/b>; rel="up"'


_names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


@given(st.lists(st.tuples(_names, _names, _names), max_size=4), _names)
def test_formatted_links_parse_back(links, bucket):
    assert parse_links([format_links(bucket, links)], bucket) == tuple(links)


# ---------------------------------------------------------------- responses


def test_content_headers_on_a_response_and_in_a_multipart_part():
    content = Content(
        b"v",
        "text/plain; charset=utf-8",
        784111777_000_000,
        meta=(("Author", "ann"),),
        indexes=(("age_int", 42),),
        links=(("b", "k", "t"),),
    )
    headers = content_headers(content, "people")
    assert headers == [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Link", '</buckets/b/keys/k>; riaktag="t", </buckets/people>; rel="up"'),
        ("ETag", f'"{content.vtag}"'),
        ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("X-Riak-Meta-Author", "ann"),
        ("X-Riak-Index-age_int", "42"),
    ]
    # In a multipart part Riak writes the Etag unquoted; a tombstone part says so.
    tomb = Content(b"", last_modified_us=1, deleted=True)
    part = dict(content_headers(tomb, "people", part=True))
    assert part["Etag"] == tomb.vtag
    assert part["X-Riak-Deleted"] == "true"


async def test_multipart_body_is_laid_out_as_riaks():
    a, b = Content(b"one", "text/plain"), Content(b"two", "text/plain")
    content_type, body = await multipart_body([a, b], "bk")
    media, _, boundary = content_type.partition("; boundary=")
    assert media == "multipart/mixed" and boundary
    # The line break before the first delimiter is what Riak's clients split on.
    assert body.startswith(f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n".encode())
    assert body.endswith(f"\r\n\r\ntwo\r\n--{boundary}--\r\n".encode())
    assert body.count(f"\r\n--{boundary}\r\n".encode()) == 2
    assert f"Etag: {a.vtag}\r\n".encode() in body
    # Riak's own clients split the body this way (riak/codecs/http.py).
    delimiter = re.compile(f"\r?\n--{re.escape(boundary)}(?:--)?\r?\n".encode())
    assert [p.split(b"\r\n\r\n", 1)[1] for p in delimiter.split(body)[1:-1]] == [b"one", b"two"]


@pytest.mark.parametrize(
    ("accept", "multipart"),
    [
        (None, False),
        ("*/*", False),
        ("multipart/mixed", True),
        ("multipart/*", True),
        ("text/plain, multipart/mixed", False),
        ("multipart/mixed, text/plain", True),
        ("multipart/mixed, application/json, */*;q=0.5", True),  # the riak client's Accept
        ("text/plain;q=0.2, multipart/mixed;q=0.9", True),
        ("multipart/mixed;q=0, */*", False),
        ("multipart/mixed;q=nan", False),
        ("application/json", False),  # Riak: 406; spinekv: the plain list
        ("garbage;;;q=x,,", False),
    ],
)
def test_sibling_format_follows_accept_as_webmachine_chooses(accept, multipart):
    assert prefers_multipart(accept) is multipart


# ---------------------------------------------------------------- dates and preconditions


@pytest.mark.parametrize(
    "raw",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ],
)
def test_the_three_http_date_forms_parse(raw):
    assert parse_http_date(raw) == 784111777


@pytest.mark.parametrize(
    "raw", [None, "", "yesterday", "Sun, 06 Nov 99999 08:49:37 GMT", "x" * 10_000, "\udcff"]
)
def test_malformed_dates_are_none(raw):
    assert parse_http_date(raw) is None


LM = 1_000_000  # the object's Last-Modified, in seconds
NOW = LM + 100
CURRENT = Version("abc", LM)


def _date(seconds: int) -> str:
    return http_date(seconds * 1_000_000)


@pytest.mark.parametrize(
    ("method", "headers", "exists", "status"),
    [
        # If-Match: anything but the current ETag (or *) fails, and fails for a missing object.
        ("PUT", {"If-Match": '"abc"'}, True, None),
        ("PUT", {"If-Match": '"old", "abc"'}, True, None),
        ("PUT", {"If-Match": 'W/"abc"'}, True, None),
        ("PUT", {"If-Match": "*"}, True, None),
        ("PUT", {"If-Match": '"old"'}, True, 412),
        ("PUT", {"If-Match": "abc"}, True, 412),  # not a quoted string: matches nothing
        ("PUT", {"If-Match": "*"}, False, 412),
        ("GET", {"If-Match": '"old"'}, True, 412),
        # If-None-Match: a match is 304 for reads and 412 for writes; no object, no match.
        ("GET", {"If-None-Match": '"abc"'}, True, 304),
        ("HEAD", {"If-None-Match": "*"}, True, 304),
        ("GET", {"If-None-Match": '"old"'}, True, None),
        ("PUT", {"If-None-Match": "*"}, True, 412),
        ("PUT", {"If-None-Match": '"abc"'}, True, 412),
        ("DELETE", {"If-None-Match": '"abc"'}, True, 412),
        ("PUT", {"If-None-Match": "*"}, False, None),
        # If-Unmodified-Since: a change after the date fails.
        ("PUT", {"If-Unmodified-Since": _date(LM - 1)}, True, 412),
        ("PUT", {"If-Unmodified-Since": _date(LM)}, True, None),
        ("PUT", {"If-Unmodified-Since": "not a date"}, True, None),
        ("PUT", {"If-Unmodified-Since": _date(LM - 1)}, False, None),
        # If-Modified-Since: not changed since is 304, whatever the method (webmachine's L17).
        ("GET", {"If-Modified-Since": _date(LM)}, True, 304),
        ("GET", {"If-Modified-Since": _date(LM + 50)}, True, 304),
        ("GET", {"If-Modified-Since": _date(LM - 1)}, True, None),
        ("GET", {"If-Modified-Since": _date(NOW + 1)}, True, None),  # in the future: ignored
        ("GET", {"If-Modified-Since": "31 Febtober"}, True, None),
        ("PUT", {"If-Modified-Since": _date(LM)}, True, 304),
        ("GET", {"If-Modified-Since": _date(LM)}, False, None),
        # Webmachine's order: If-Match before If-None-Match, If-None-Match before the dates.
        ("PUT", {"If-Match": '"old"', "If-None-Match": "*"}, True, 412),
        ("GET", {"If-None-Match": '"old"', "If-Modified-Since": _date(LM)}, True, 304),
        ("GET", {"If-None-Match": '"abc"', "If-Modified-Since": _date(LM - 1)}, True, 304),
        ("GET", {}, True, None),
        ("PUT", {}, False, None),
    ],
)
def test_preconditions_follow_webmachines_decisions(method, headers, exists, status):
    refusal = check_conditions(
        Conditions.of(headers), CURRENT if exists else None, method=method, now=NOW
    )
    assert (refusal.status if refusal else None) == status


def test_conditions_know_whether_any_header_was_sent():
    assert not Conditions.of({}).any()
    assert Conditions.of({"If-Modified-Since": "x"}).any()


# ---------------------------------------------------------------- text


def test_text_values_must_be_utf8():
    assert text_value("X", "café") == "café"
    with pytest.raises(HttpError):
        text_value("X", "\udcff")
