"""Riak's HTTP object semantics on an in-process cluster: headers, statuses, preconditions, input.

One five-node cluster serves the whole module; each test works in a bucket of its own.
"""

from __future__ import annotations

import asyncio
import email.parser
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio
from multidict import CIMultiDict

from spinekv import object as riak_object
from spinekv.http.riakheaders import parse_http_date
from spinekv.node.coordinator import BKey
from tests.inproc import inproc_cluster

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEXT = {"Content-Type": "text/plain"}
# What the PyPI riak client sends on every request.
RIAK_CLIENT_ACCEPT = "multipart/mixed, application/json, */*;q=0.5"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(tmp_path_factory):
    async with inproc_cluster(tmp_path_factory.mktemp("http_kv")) as c:
        yield c


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.fixture
def bucket(request) -> str:
    """A bucket no other test uses."""
    return re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:80]


@dataclass
class Reply:
    status: int
    headers: CIMultiDict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


async def call(http, method, url, data=None, headers=None, *, content_type=True) -> Reply:
    skip = set() if content_type else {"Content-Type"}
    async with http.request(
        method, url, data=data, headers=headers or {}, skip_auto_headers=skip
    ) as r:
        return Reply(r.status, CIMultiDict(r.headers), await r.read())


async def raw_request(base_url: str, head: bytes, body: bytes = b"") -> int:
    """Send bytes no well-behaved client would (e.g. a header that is not UTF-8); the status."""
    where = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        writer.write(head + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()
    finally:
        writer.close()
    return int(status_line.split()[1])


def stored(cluster, bucket_type: str, bucket: str, key: str) -> list[list[riak_object.Content]]:
    """The contents every primary replica holds (read straight from its vnode)."""
    okey = BKey(bucket_type.encode(), bucket.encode(), key.encode()).okey
    out = []
    for partition, node in cluster.replicas(bucket_type.encode(), bucket.encode(), key.encode()):
        obj = cluster.nodes[node].vnodes.get(partition, okey)
        out.append([] if obj is None else riak_object.contents(obj))
    return out


def parts_of(reply: Reply) -> list:
    """The parts of a multipart/mixed body, read with the standard library's MIME parser."""
    head = f"Content-Type: {reply.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser().parsebytes(head + reply.body)
    assert message.is_multipart()
    return message.get_payload()


def etag_of(reply: Reply) -> str:
    assert re.fullmatch(r'"[a-z0-9]+"', reply.headers["ETag"]), reply.headers.get("ETag")
    return reply.headers["ETag"].strip('"')


# ---------------------------------------------------------------------------- read headers


async def test_get_answers_with_riaks_object_headers(cluster, http, bucket):
    url = f"/buckets/{bucket}/keys/ann"
    headers = CIMultiDict(
        {
            "Content-Type": 'text/plain; charset="utf-8"',
            "X-Riak-Meta-Author": "clinic-7",
            "X-Riak-Index-Email_BIN": "b@x.org, a@x.org",
            "X-Riak-Index-age_int": "42",
        }
    )
    headers.add("Link", f'</buckets/{bucket}/keys/bob>; riaktag="friend"')
    headers.add("Link", '</buckets/other%20one/keys/c%2Fd>; riaktag="best+friend"')
    put = await call(http, "PUT", cluster.url("n1") + url + "?w=3", "héllo".encode(), headers)
    assert put.status == 204 and put.body == b""
    assert put.headers["X-Riak-Vclock"]

    r = await call(http, "GET", cluster.url("n4") + url)
    assert r.status == 200
    assert r.text == "héllo"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["X-Riak-Vclock"] == put.headers["X-Riak-Vclock"]
    assert r.headers["X-Riak-Meta-Author"] == "clinic-7"
    # One header per index, its values comma-separated; names lower-cased.
    assert r.headers.getall("X-Riak-Index-email_bin") == ["a@x.org, b@x.org"]
    assert r.headers.getall("X-Riak-Index-age_int") == ["42"]
    assert r.headers.getall("Link") == [
        f'</buckets/{bucket}/keys/bob>; riaktag="friend", '
        '</buckets/other+one/keys/c%2Fd>; riaktag="best+friend", '
        f'</buckets/{bucket}>; rel="up"'
    ]
    # What was stored, on every replica: Content's links, indexes and metadata.
    for contents in stored(cluster, "default", bucket, "ann"):
        (content,) = contents
        assert content.content_type == "text/plain; charset=utf-8"
        assert content.indexes == (
            ("age_int", 42),
            ("email_bin", "a@x.org"),
            ("email_bin", "b@x.org"),
        )
        assert content.links == ((bucket, "bob", "friend"), ("other one", "c/d", "best friend"))
        assert content.meta == (("Author", "clinic-7"),)
        assert etag_of(r) == content.vtag
        assert parse_http_date(r.headers["Last-Modified"]) == content.last_modified_us // 10**6


async def test_typed_buckets_answer_links_and_locations_as_riak_does(cluster, http, bucket):
    base = f"{cluster.url('n2')}/types/siblings/buckets/{bucket}"
    link = {"Link": f'</buckets/{bucket}/keys/k2>; riaktag="next"', **TEXT}
    r = await call(http, "POST", base + "/keys", b"new", link)
    assert r.status == 201
    assert r.headers["Location"].startswith(f"/types/siblings/buckets/{bucket}/keys/")
    got = await call(http, "GET", cluster.url("n3") + r.headers["Location"])
    # Riak writes the /buckets/ form under /types/ too; the type is the object's own.
    assert got.headers["Link"] == (
        f'</buckets/{bucket}/keys/k2>; riaktag="next", </buckets/{bucket}>; rel="up"'
    )


async def test_siblings_are_300_as_a_list_or_multipart_with_every_part_described(
    cluster, http, bucket
):
    url = f"/types/siblings/buckets/{bucket}/keys/k"
    for node, value, tag in (("n1", b"left", "l"), ("n3", b"right", "r")):
        headers = {
            **TEXT,
            "X-Riak-Meta-Side": tag,
            "X-Riak-Index-side_bin": tag,
            "Link": f'</buckets/{bucket}/keys/{tag}>; riaktag="side"',
        }
        assert (
            await call(http, "PUT", cluster.url(node) + url + "?w=3", value, headers)
        ).status == 204

    listing = await call(http, "GET", cluster.url("n2") + url)
    assert listing.status == 300
    assert listing.headers["Content-Type"].startswith("text/plain")
    lines = listing.text.splitlines()
    assert lines[0] == "Siblings:" and len(lines) == 3
    vtags = lines[1:]
    assert listing.headers["X-Riak-Vclock"]
    sibling_etag = etag_of(listing)
    assert sibling_etag not in vtags  # the ETag of several siblings comes from their context
    (contents, *_) = stored(cluster, "siblings", bucket, "k")
    modified = {c.value: c.last_modified_us // 10**6 for c in contents}
    assert parse_http_date(listing.headers["Last-Modified"]) == max(modified.values())

    multi = await call(http, "GET", cluster.url("n5") + url, headers={"Accept": RIAK_CLIENT_ACCEPT})
    assert multi.status == 300
    assert multi.headers["Content-Type"].startswith("multipart/mixed; boundary=")
    assert etag_of(multi) == sibling_etag
    parts = {part.get_payload(decode=True): part for part in parts_of(multi)}
    assert set(parts) == {b"left", b"right"}
    for value, tag in ((b"left", "l"), (b"right", "r")):
        part = parts[value]
        assert part["Content-Type"] == "text/plain"
        assert part["Etag"] in vtags  # unquoted in parts, as Riak writes it
        assert parse_http_date(part["Last-Modified"]) == modified[value]
        assert part["X-Riak-Meta-Side"] == tag
        assert part["X-Riak-Index-side_bin"] == tag
        assert part["Link"] == (
            f'</buckets/{bucket}/keys/{tag}>; riaktag="side", </buckets/{bucket}>; rel="up"'
        )
        assert part["X-Riak-Deleted"] is None

    # ?vtag= answers one sibling, with its own headers.
    for vtag in vtags:
        one = await call(http, "GET", cluster.url("n1") + url + f"?vtag={vtag}")
        assert one.status == 200 and one.body in (b"left", b"right")
        assert etag_of(one) == vtag
    assert (await call(http, "GET", cluster.url("n1") + url + "?vtag=nosuch")).status == 404


async def test_a_tombstone_sibling_is_listed_and_marked_deleted(cluster, http, bucket):
    url = f"/types/siblings/buckets/{bucket}/keys/k"
    first = await call(http, "PUT", cluster.url("n1") + url + "?w=3", b"first", TEXT)
    context = {"X-Riak-Vclock": first.headers["X-Riak-Vclock"]}
    # A write and a delete that both saw "first": neither supersedes the other.
    r = await call(http, "PUT", cluster.url("n2") + url + "?w=3", b"second", {**TEXT, **context})
    assert r.status == 204
    assert (
        await call(http, "DELETE", cluster.url("n3") + url + "?w=3", headers=context)
    ).status == 204

    multi = await call(http, "GET", cluster.url("n4") + url, headers={"Accept": "multipart/mixed"})
    assert multi.status == 300
    parts = parts_of(multi)
    deleted = [p for p in parts if p["X-Riak-Deleted"] == "true"]
    live = [p for p in parts if p["X-Riak-Deleted"] is None]
    assert len(deleted) == 1 and len(live) == 1
    assert live[0].get_payload(decode=True) == b"second"
    one = await call(http, "GET", cluster.url("n5") + url + f"?vtag={deleted[0]['Etag']}")
    assert one.status == 200
    assert one.headers["X-Riak-Deleted"] == "true"
    assert one.body == b""


async def test_get_of_a_deleted_key_is_404_marked_deleted_with_its_vclock(cluster, http, bucket):
    # The tombstone must outlive the reads below, whatever the machine's speed.
    await cluster.set_props(http, "default", bucket, {"delete_mode": "keep"})
    url = f"{cluster.url('n1')}/buckets/{bucket}/keys/gone"
    assert (await call(http, "PUT", url + "?w=3", b"x", TEXT)).status == 204
    assert (await call(http, "DELETE", url + "?w=3")).status == 204
    r = await call(http, "GET", url)
    assert r.status == 404
    assert r.headers.get("X-Riak-Deleted") == "true"
    assert r.headers.get("X-Riak-Vclock")


# ---------------------------------------------------------------------------- conditional GET


async def test_conditional_get_answers_304_or_412_against_etag_and_last_modified(
    cluster, http, bucket
):
    url = f"{cluster.url('n1')}/buckets/{bucket}/keys/k"
    assert (await call(http, "PUT", url + "?w=3", b"v", TEXT)).status == 204
    r = await call(http, "GET", url)
    etag, last_modified = r.headers["ETag"], r.headers["Last-Modified"]
    seconds = parse_http_date(last_modified)
    earlier = "Thu, 01 Jan 1970 00:00:01 GMT"
    (content,) = stored(cluster, "default", bucket, "k")[0]
    assert seconds == content.last_modified_us // 10**6

    async def get(headers, method="GET"):
        return await call(http, method, url, headers=headers)

    not_modified = await get({"If-None-Match": etag})
    assert (not_modified.status, not_modified.body) == (304, b"")
    assert not_modified.headers["ETag"] == etag
    assert (await get({"If-None-Match": "*"})).status == 304
    assert (await get({"If-None-Match": '"other"'})).status == 200
    assert (await get({"If-None-Match": etag}, "HEAD")).status == 304
    assert (await get({"If-Modified-Since": last_modified})).status == 304
    assert (await get({"If-Modified-Since": earlier})).status == 200
    assert (await get({"If-Modified-Since": "Febtober 31st"})).status == 200  # ignored
    assert (await get({"If-Modified-Since": "Sun, 06 Nov 99999 08:49:37 GMT"})).status == 200
    failed = await get({"If-Match": '"other"'})
    assert failed.status == 412 and "If-Match" in failed.text
    assert (await get({"If-Match": etag})).status == 200
    assert (await get({"If-Unmodified-Since": earlier})).status == 412
    assert (await get({"If-Unmodified-Since": last_modified})).status == 200


async def test_conditional_get_of_siblings_uses_their_shared_etag(cluster, http, bucket):
    url = f"{cluster.url('n1')}/types/siblings/buckets/{bucket}/keys/k"
    for value in (b"a", b"b"):
        assert (await call(http, "PUT", url + "?w=3", value, TEXT)).status == 204
    listing = await call(http, "GET", url)
    assert listing.status == 300
    again = await call(http, "GET", url, headers={"If-None-Match": listing.headers["ETag"]})
    assert again.status == 304
    # A third sibling changes the context, so the old ETag no longer matches.
    assert (await call(http, "PUT", url + "?w=3", b"c", TEXT)).status == 204
    changed = await call(http, "GET", url, headers={"If-None-Match": listing.headers["ETag"]})
    assert changed.status == 300


# ---------------------------------------------------------------------------- conditional writes


async def test_if_none_match_star_creates_only(cluster, http, bucket):
    url = f"{cluster.url('n2')}/buckets/{bucket}/keys/k"
    create_only = {**TEXT, "If-None-Match": "*"}
    assert (await call(http, "PUT", url, b"first", create_only)).status == 204
    refused = await call(http, "PUT", url, b"second", create_only)
    assert refused.status == 412 and "If-None-Match" in refused.text
    assert (await call(http, "GET", url)).body == b"first"
    # A deleted key does not exist: create-only may write it again.
    assert (await call(http, "DELETE", url)).status == 204
    assert (await call(http, "PUT", url, b"third", create_only)).status == 204
    assert (await call(http, "GET", url)).body == b"third"


async def test_if_match_writes_over_what_was_read_without_making_a_sibling(cluster, http, bucket):
    # allow_mult is on in `siblings`: a blind write would become a sibling.
    url = f"{cluster.url('n1')}/types/siblings/buckets/{bucket}/keys/k"
    assert (await call(http, "PUT", url + "?w=3", b"v1", TEXT)).status == 204
    etag = (await call(http, "GET", url)).headers["ETag"]

    r = await call(http, "PUT", url + "?w=3", b"v2", {**TEXT, "If-Match": etag})
    assert r.status == 204
    got = await call(http, "GET", url + "?r=3")
    assert (got.status, got.body) == (200, b"v2")

    stale = await call(http, "PUT", url, b"v3", {**TEXT, "If-Match": etag})
    assert stale.status == 412
    assert (await call(http, "GET", url + "?r=3")).body == b"v2"

    missing = f"{cluster.url('n1')}/types/siblings/buckets/{bucket}/keys/nobody"
    assert (await call(http, "PUT", missing, b"x", {**TEXT, "If-Match": "*"})).status == 412
    assert (await call(http, "GET", missing)).status == 404


async def test_date_preconditions_on_writes(cluster, http, bucket):
    url = f"{cluster.url('n3')}/buckets/{bucket}/keys/k"
    assert (await call(http, "PUT", url + "?w=3", b"v1", TEXT)).status == 204
    last_modified = (await call(http, "GET", url)).headers["Last-Modified"]
    earlier = "Thu, 01 Jan 1970 00:00:01 GMT"

    r = await call(http, "PUT", url, b"v2", {**TEXT, "If-Unmodified-Since": earlier})
    assert r.status == 412
    # Webmachine answers a write that was not modified since If-Modified-Since with 304.
    r = await call(http, "PUT", url, b"v2", {**TEXT, "If-Modified-Since": last_modified})
    assert r.status == 304
    assert (await call(http, "GET", url)).body == b"v1"
    r = await call(http, "PUT", url, b"v2", {**TEXT, "If-Unmodified-Since": last_modified})
    assert r.status == 204
    assert (await call(http, "GET", url)).body == b"v2"


async def test_delete_is_204_404_when_missing_and_honours_preconditions(cluster, http, bucket):
    url = f"{cluster.url('n4')}/buckets/{bucket}/keys/k"
    assert (await call(http, "DELETE", url)).status == 404
    put = await call(http, "PUT", url + "?w=3", b"v", TEXT)
    etag = (await call(http, "GET", url)).headers["ETag"]

    assert (await call(http, "DELETE", url, headers={"If-Match": '"other"'})).status == 412
    assert (await call(http, "DELETE", url, headers={"If-None-Match": etag})).status == 412
    assert (await call(http, "GET", url)).body == b"v"
    r = await call(http, "DELETE", url + "?w=3", headers={"If-Match": etag})
    assert (r.status, r.body) == (204, b"")
    assert (await call(http, "GET", url)).status == 404
    assert (await call(http, "DELETE", url)).status == 404
    # With the client's context as well, a missing key is still a 404, as in Riak.
    vclock = {"X-Riak-Vclock": put.headers["X-Riak-Vclock"]}
    other = f"{cluster.url('n4')}/buckets/{bucket}/keys/never"
    assert (await call(http, "DELETE", other, headers=vclock)).status == 404


# ---------------------------------------------------------------------------- write statuses


async def test_write_statuses_returnbody_and_location(cluster, http, bucket):
    base = f"{cluster.url('n5')}/buckets/{bucket}/keys"
    meta = {**TEXT, "X-Riak-Meta-Who": "me", "X-Riak-Index-n_int": "7"}

    plain = await call(http, "PUT", base + "/k", b"v1", meta)
    assert (plain.status, plain.body) == (204, b"")

    body = await call(http, "PUT", base + "/k?returnbody=true", b"v2", meta)
    assert (body.status, body.body) == (200, b"v2")
    assert body.headers["Content-Type"] == "text/plain"
    assert body.headers["X-Riak-Meta-Who"] == "me"
    assert body.headers["X-Riak-Index-n_int"] == "7"
    assert body.headers["Link"] == f'</buckets/{bucket}>; rel="up"'
    assert body.headers["X-Riak-Vclock"]
    written = [c for cs in stored(cluster, "default", bucket, "k") for c in cs]
    (content, *_) = [c for c in written if c.vtag == etag_of(body)]
    assert parse_http_date(body.headers["Last-Modified"]) == content.last_modified_us // 10**6

    made = await call(http, "POST", base, b"v3", TEXT)
    assert (made.status, made.body) == (201, b"")
    location = made.headers["Location"]
    assert re.fullmatch(rf"/buckets/{bucket}/keys/[a-z0-9]+", location)
    assert (await call(http, "GET", cluster.url("n1") + location)).body == b"v3"

    made = await call(http, "POST", base + "?returnbody=true", b"v4", TEXT)
    assert (made.status, made.body) == (201, b"v4")
    assert made.headers["Location"] != location and etag_of(made)

    # A POST to a key is a PUT.
    assert (await call(http, "POST", base + "/k", b"v5", TEXT)).status == 204
    assert (await call(http, "GET", base + "/k")).body == b"v5"


async def test_returnbody_with_siblings_is_300(cluster, http, bucket):
    url = f"{cluster.url('n1')}/types/siblings/buckets/{bucket}/keys/k"
    assert (await call(http, "PUT", url + "?w=3", b"a", TEXT)).status == 204
    r = await call(
        http, "PUT", url + "?returnbody=true&w=3", b"b", {**TEXT, "Accept": RIAK_CLIENT_ACCEPT}
    )
    assert r.status == 300
    assert sorted(p.get_payload(decode=True) for p in parts_of(r)) == [b"a", b"b"]


# ---------------------------------------------------------------------------- bad input


@pytest_asyncio.fixture(loop_scope="module")
async def good(cluster, http, bucket):
    """An object stored with an index and a link, which no refused request may change."""
    url = f"{cluster.url('n1')}/buckets/{bucket}/keys/k"
    headers = {
        **TEXT,
        "X-Riak-Index-n_int": "1",
        "Link": f'</buckets/{bucket}/keys/x>; riaktag="t"',
    }
    assert (await call(http, "PUT", url + "?w=3", b"good", headers)).status == 204
    return url


async def assert_unchanged(cluster, http, bucket, url):
    r = await call(http, "GET", url + "?r=3")
    assert (r.status, r.body) == (200, b"good")
    for contents in stored(cluster, "default", bucket, "k"):
        assert [(c.value, c.indexes, c.links) for c in contents] == [
            (b"good", (("n_int", 1),), ((bucket, "x", "t"),))
        ]


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({"Content-Type": None}, 400, "Missing Content-Type request header"),
        ({"Content-Type": "json"}, 415, '"json" is not a valid media type'),
        ({"X-Riak-Index-n_int": "one"}, 400, "Could not parse field 'n_int', value 'one'."),
        ({"X-Riak-Index-n_int": "1, 2.5"}, 400, "value '2.5'"),
        ({"X-Riak-Index-n": "1"}, 400, "Unknown field type for field: 'n'."),
        ({"X-Riak-Index-n_int": "9" * 30}, 400, "Could not parse field 'n_int'"),
        ({"Link": "</buckets/b/keys/k>"}, 400, "Invalid Link header"),
        ({"Link": '</buckets/elsewhere>; rel="up"'}, 400, "Invalid Link header"),
        ({"Link": '</types/t/buckets/b/keys/k>; riaktag="x"'}, 400, "Invalid Link header"),
        ({"Link": "<" * 4000}, 400, "Invalid Link header"),
        ({"X-Riak-Vclock": "not a vclock"}, 400, "X-Riak-Vclock"),
        ({"If-Match": "garbage"}, 412, "If-Match"),
        ({"If-None-Match": "*"}, 412, "If-None-Match"),
    ],
)
async def test_bad_write_headers_are_refused_with_a_reason_and_change_nothing(
    cluster, http, bucket, good, headers, status, reason
):
    sent = {k: v for k, v in {**TEXT, **headers}.items() if v is not None}
    r = await call(http, "PUT", good, b"bad", sent, content_type="Content-Type" in sent)
    assert r.status == status
    assert reason in r.text
    await assert_unchanged(cluster, http, bucket, good)


@pytest.mark.parametrize(
    ("method", "query", "reason"),
    [
        ("GET", "r=7", "r=7 is out of range"),
        ("GET", "r=lots", "r='lots' is not a number"),
        ("GET", "pr=4", "pr=4 is out of range"),
        ("GET", "r=%C2%B2", "is not a number"),  # a superscript two: a digit to isdigit()
        pytest.param("GET", "r=" + "9" * 5000, "is not a number", id="GET-r=5000-digits"),
        ("GET", "w=abc", "w='abc' is not a number"),  # checked on every method, as Riak does
        ("GET", "timeout=abc", "Bad timeout value 'abc'"),
        ("GET", "timeout=99999999999", "Bad timeout value"),
        ("GET", "notfound_ok=maybe", "notfound_ok query parameter must be true or false"),
        ("GET", "basic_quorum=1", "basic_quorum query parameter must be true or false"),
        ("GET", "asis=perhaps", "asis query parameter"),
        ("PUT", "returnbody=maybe", "returnbody query parameter must be true or false"),
        ("PUT", "w=0", "w=0 is out of range"),
        ("PUT", "dw=x", "dw='x' is not a number"),
        ("PUT", "pw=4", "pw=4 is out of range"),
        ("PUT", "node_confirms=4", "node_confirms=4 is out of range"),
        ("PUT", "r=9", "r=9 is out of range"),
        ("PUT", "asis=true", "asis=true is not supported"),
        ("PUT", "sync_on_write=sometimes", "sync_on_write query parameter must be one of"),
        ("PUT", "timeout=-5", "Bad timeout value"),
        ("DELETE", "rw=9", "rw=9 is out of range"),
        ("DELETE", "w=many", "w='many' is not a number"),
        ("DELETE", "timeout=1.5", "Bad timeout value"),
    ],
)
async def test_bad_parameters_are_400_with_a_reason_and_change_nothing(
    cluster, http, bucket, good, method, query, reason
):
    r = await call(http, method, f"{good}?{query}", b"bad" if method == "PUT" else None, TEXT)
    assert r.status == 400
    assert reason in r.text
    await assert_unchanged(cluster, http, bucket, good)


async def test_good_parameters_and_unknown_ones_are_accepted(cluster, http, bucket, good):
    query = "r=one&pr=0&notfound_ok=default&basic_quorum=TRUE&timeout=5000&color=blue&asis=false"
    assert (await call(http, "GET", f"{good}?{query}")).status == 200
    # timeout=0 is what Riak's clients send for "no timeout": the node's own timeout.
    assert (await call(http, "GET", f"{good}?timeout=0")).status == 200
    returned = await call(http, "PUT", f"{good}?returnbody=TRUE", b"again", TEXT)
    assert (returned.status, returned.body) == (200, b"again")
    query = "w=all&dw=quorum&pw=default&node_confirms=2&sync_on_write=all&returnbody=false&x=1"
    assert (await call(http, "PUT", f"{good}?{query}", b"new", TEXT)).status == 204
    assert (await call(http, "GET", good)).body == b"new"


@pytest.mark.parametrize("method", ["GET", "PUT", "POST", "DELETE"])
async def test_unknown_bucket_type_is_riaks_404(cluster, http, bucket, method):
    path = f"/types/nosuch/buckets/{bucket}/keys" + ("" if method == "POST" else "/k")
    r = await call(
        http, method, cluster.url("n3") + path, b"v" if method in ("PUT", "POST") else None, TEXT
    )
    assert (r.status, r.text) == (404, "Unknown bucket type: nosuch\n")
    # A malformed request is refused as such first, as Riak checks input before the type.
    bad = await call(http, method, cluster.url("n3") + path + "?r=lots", b"v", TEXT)
    assert bad.status == 400


async def test_odd_headers_are_4xx_or_harmless_never_500(cluster, http, bucket, good):
    base = cluster.url("n2")
    where = urlsplit(good)
    # Header bytes that are not UTF-8.
    head = (
        f"PUT {where.path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        "Content-Length: 3\r\nX-Riak-Meta-Name: caf"
    ).encode() + b"\xff\r\n"
    assert await raw_request(base, head, b"bad") == 400
    # A header value longer than the server takes.
    huge = await call(http, "PUT", good, b"bad", {**TEXT, "X-Riak-Meta-Big": "x" * 9000})
    assert 400 <= huge.status < 500
    await assert_unchanged(cluster, http, bucket, good)

    # Large but acceptable metadata and many index values round-trip.
    other = f"{base}/buckets/{bucket}/keys/big"
    values = ", ".join(str(i) for i in range(1000))
    headers = {**TEXT, "X-Riak-Meta-Big": "y" * 7000, "X-Riak-Index-many_int": values}
    assert (await call(http, "PUT", other, b"v", headers)).status == 204
    r = await call(http, "GET", other)
    assert r.headers["X-Riak-Meta-Big"] == "y" * 7000
    assert r.headers["X-Riak-Index-many_int"] == ", ".join(str(i) for i in sorted(range(1000)))


async def test_bucket_and_key_segments_decode_as_riak_does(cluster, http, bucket):
    base = f"{cluster.url('n1')}/buckets/{bucket}/keys"
    assert (await call(http, "PUT", base + "/a+b", b"space", TEXT)).status == 204
    assert (await call(http, "GET", base + "/a%20b")).body == b"space"
    assert (await call(http, "PUT", base + "/c%2Bd", b"plus", TEXT)).status == 204
    assert (await call(http, "GET", base + "/c+d")).status == 404
    assert (await call(http, "GET", base + "/c%2Bd")).body == b"plus"
    assert (await call(http, "PUT", base + "/x%2Fy", b"slash", TEXT)).status == 204
    assert stored(cluster, "default", bucket, "x/y")[0][0].value == b"slash"
    bad = await call(http, "GET", base + "/%FF")
    assert bad.status == 400 and "not UTF-8" in bad.text
