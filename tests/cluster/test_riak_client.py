"""The official Riak Python client (PyPI `riak` 2.7.0, protocol http) against real node processes.

Each test is what a Riak user would write with that client, unchanged; it only works if spinekv
answers as Riak does. Every HTTP exchange is printed (method, path, status, start of the body), so
a failing test shows the request the server got wrong.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from contextlib import closing

import pytest

from tests.riak_shim import import_riak
from tests.support import eventually_sync

from .conftest import ProcessCluster

# The client builds a distutils LooseVersion from /stats on each new connection; Python 3.11 warns
# about distutils, which says nothing about spinekv.
pytestmark = pytest.mark.filterwarnings(
    "ignore:distutils Version classes are deprecated:DeprecationWarning"
)

riak = import_riak()
last_written_resolver = riak.resolver.last_written_resolver


def _short(data: bytes | str | None, limit: int = 300) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")
    text = text.replace("\r\n", "\\r\\n").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "..."


# Headers that carry Riak semantics, shown in the exchange log (the rest is noise).
_SHOWN_HEADERS = ("content-type", "link", "location", "if-", "x-riak-")


def _shown(headers) -> str:
    pairs = [
        f"{name}: {value if isinstance(value, str) else value.decode()}"
        for name, value in headers
        if name.lower().startswith(_SHOWN_HEADERS) and name.lower() != "x-riak-clientid"
    ]
    return " [" + "; ".join(pairs) + "]" if pairs else ""


class RecordingConnection(riak.transports.http.NoNagleHTTPConnection):
    """The client's own connection class, printing every exchange for the failure report."""

    def request(self, method, url, body=None, headers=None, **kwargs):
        headers = headers if headers is not None else {}
        self._exchange = f"{method} {url}{_shown(headers.items())}" + (
            f" body={_short(body)}" if body else ""
        )
        super().request(method, url, body, headers, **kwargs)

    def getresponse(self):
        response = super().getresponse()
        body = response.read()
        shown = _shown(response.getheaders())
        print(f"{self._exchange}\n  -> {response.status}{shown} {_short(body)}")
        # Hand the client the whole body again, as if it had not been read, so it parses the
        # response exactly as it would have (streams included: they are finite here).
        response.fp = io.BytesIO(body)
        response.length = len(body)
        response.chunked = False
        return response


def make_client(cluster: ProcessCluster, names: list[str] | None = None) -> riak.RiakClient:
    names = names or cluster.config.node_names()
    nodes = [
        {"host": cluster.config.node(n).host, "http_port": cluster.config.node(n).http_port}
        for n in names
    ]
    # A timeout on every request, so a server that hangs fails the test instead of stalling it.
    client = riak.RiakClient(protocol="http", nodes=nodes, transport_options={"timeout": 20})
    client._http_pool.connection_class = RecordingConnection
    return client


@contextlib.contextmanager
def spread_client(cluster: ProcessCluster) -> Iterator[riak.RiakClient]:
    """A client that spreads its requests over all five nodes, as Riak clients are set up."""
    with closing(make_client(cluster)) as c:
        yield c


@contextlib.contextmanager
def per_node_clients(cluster: ProcessCluster) -> Iterator[dict[str, riak.RiakClient]]:
    """One client per node, to check what each node answers."""
    clients = {name: make_client(cluster, [name]) for name in cluster.config.node_names()}
    try:
        yield clients
    finally:
        for c in clients.values():
            c.close()


# Most tests keep to buckets of their own and share one cluster; the two that list every
# bucket or change the siblings type's props get a cluster of their own (the fresh_ fixtures).
@pytest.fixture(scope="module")
def client(shared_cluster):
    with spread_client(shared_cluster) as c:
        yield c


@pytest.fixture(scope="module")
def node_clients(shared_cluster):
    with per_node_clients(shared_cluster) as clients:
        yield clients


@pytest.fixture
def fresh_client(cluster):
    with spread_client(cluster) as c:
        yield c


@pytest.fixture
def fresh_node_clients(cluster):
    with per_node_clients(cluster) as clients:
        yield clients


def wait_for_props(
    node_clients: dict[str, riak.RiakClient], bucket_of: Callable, wanted: dict
) -> None:
    """Poll until every node reports `wanted` among the props (bucket metadata is gossiped)."""

    def everywhere():
        for c in node_clients.values():
            props = bucket_of(c).get_properties()
            if any(props.get(k) != v for k, v in wanted.items()):
                return False
        return True

    eventually_sync(everywhere, what=f"every node to report {wanted}")


# ---------------------------------------------------------------------------- discovery


def test_client_discovers_riak_2_features_pings_and_reads_preflists(
    shared_cluster, client, node_clients
):
    """GET / and /stats make the client enable bucket types, counters, streaming and preflists."""
    cluster = shared_cluster
    for name, c in node_clients.items():
        assert c.ping(), name
        # The transport the client itself uses, holding what it learnt from GET / and /stats.
        with c._transport() as transport:
            stats = transport.stats()
            assert stats is not None, f"{name}: GET /stats failed"
            assert stats["riak_kv_version"].startswith("2."), stats["riak_kv_version"]
            # The client's own feature switches, read from the resource map and the version.
            assert transport.riak_kv_wm_buckets == "/buckets"
            assert transport.bucket_types()
            assert transport.counters()
            assert transport.bucket_stream()
            assert transport.stream_indexes()
            assert transport.index_term_regex()
            assert transport.preflists()
            assert transport.riak_kv_wm_counter
            assert transport.riak_kv_wm_preflist

    bucket = client.bucket("people")
    bucket.new("ann", data={"name": "Ann"}).store()
    preflist = bucket.get_preflist("ann")
    assert preflist == client.get_preflist(bucket, "ann")
    assert len(preflist) == 3
    assert all(entry["primary"] for entry in preflist)
    # The same partitions and nodes that hold the replicas.
    replicas = cluster.replicas("n1", "people", "ann")
    assert [(e["partition"], e["node"]) for e in preflist] == [
        (r["partition"], r["node"]) for r in replicas
    ]
    assert len({e["node"] for e in preflist}) == 3

    typed = client.bucket_type("siblings").bucket("people")
    typed_preflist = typed.get_preflist("ann")
    assert len(typed_preflist) == 3
    assert all(entry["node"] in cluster.config.node_names() for entry in typed_preflist)


# ---------------------------------------------------------------------------- objects


def test_store_fetch_and_delete_objects_with_metadata(node_clients):
    """JSON, text and binary values keep their content type, user meta, indexes and links."""
    writer, reader = node_clients["n1"], node_clients["n4"]
    people = writer.bucket("people")

    bob = people.new("bob", data={"name": "Bob"})
    bob.store()
    ann = people.new("ann", data={"name": "Ann", "age": 42})
    ann.usermeta = {"author": "clinic-7"}
    ann.add_index("email_bin", "ann@example.org")
    ann.add_index("age_int", 42)
    ann.add_link(bob, "friend")
    before = int(time.time())
    stored = ann.store()
    assert stored.exists
    assert stored.vclock is not None
    assert stored.etag

    fetched = reader.bucket("people").get("ann")
    assert fetched.exists
    assert fetched.data == {"name": "Ann", "age": 42}
    assert fetched.content_type == "application/json"
    assert fetched.usermeta == {"author": "clinic-7"}
    assert fetched.indexes == {("email_bin", "ann@example.org"), ("age_int", 42)}
    assert fetched.links == [("people", "bob", "friend")]
    assert before <= fetched.last_modified <= time.time()  # the write's time, in seconds
    assert fetched.vclock.encode("base64") == stored.vclock.encode("base64")

    # Text with a charset, and opaque bytes.
    note = writer.bucket("notes").new("n1", data="héllo wörld", content_type="text/plain")
    note.charset = "utf-8"
    note.store()
    got = reader.bucket("notes").get("n1")
    assert (got.data, got.content_type, got.charset) == ("héllo wörld", "text/plain", "utf-8")
    blob = bytes(range(256))
    writer.bucket("blobs").new(
        "b1", encoded_data=blob, content_type="application/octet-stream"
    ).store()
    got = reader.bucket("blobs").get("b1")
    assert (got.encoded_data, got.content_type) == (blob, "application/octet-stream")

    # A key the server makes up (POST), then read back by that key.
    made = writer.bucket("notes").new(data="no key given", content_type="text/plain").store()
    assert made.key
    assert reader.bucket("notes").get(made.key).data == "no key given"

    # Read-modify-write replaces the value and its indexes.
    fetched.data = {"name": "Ann", "age": 43}
    fetched.remove_index("age_int", 42)
    fetched.add_index("age_int", 43)
    fetched.store()
    again = node_clients["n2"].bucket("people").get("ann")
    assert len(again.siblings) == 1
    assert again.data == {"name": "Ann", "age": 43}
    assert again.indexes == {("email_bin", "ann@example.org"), ("age_int", 43)}

    # Create-only writes refuse an existing key and accept a new one.
    with pytest.raises(riak.RiakError):
        people.new("ann", data={"name": "impostor"}).store(if_none_match=True)
    assert reader.bucket("people").get("ann").data == {"name": "Ann", "age": 43}
    people.new("cat", data={"name": "Cat"}).store(if_none_match=True)
    assert reader.bucket("people").get("cat").data == {"name": "Cat"}

    # Quorum parameters pass through; a bad one is refused.
    assert reader.bucket("people").get("ann", r="all", pr=1).data["age"] == 43
    with pytest.raises(riak.RiakError):
        reader.bucket("people").get("ann", r=7)

    # Missing keys and deletes.
    missing = reader.bucket("people").get("nobody")
    assert not missing.exists
    assert missing.data is None
    again.delete()
    assert not reader.bucket("people").get("ann").exists
    assert not node_clients["n5"].bucket("people").get("ann").exists
    people.delete("nobody")  # deleting a missing key is not an error
    people.new("ann", data={"name": "Ann again"}).store()
    assert reader.bucket("people").get("ann").data == {"name": "Ann again"}


def test_siblings_and_resolvers(node_clients):
    """Blind writes in an allow_mult type make siblings; resolvers choose; a store collapses."""
    c1, c3, c5 = node_clients["n1"], node_clients["n3"], node_clients["n5"]
    notes = c1.bucket_type("siblings").bucket("notes")

    first = notes.new("k", data="first", content_type="text/plain").store()
    # Last-Modified has one-second resolution: write the second sibling a second later so the
    # last-written resolver has a clear winner.
    eventually_sync(lambda: time.time() >= first.last_modified + 1.05, what="the next second")
    second = (
        c3.bucket_type("siblings")
        .bucket("notes")
        .new("k", data="second", content_type="text/plain")
    )
    second.store()
    assert len(second.siblings) == 2  # returnbody answers with both siblings

    obj = c5.bucket_type("siblings").bucket("notes").get("k")
    assert len(obj.siblings) == 2
    assert {s.data for s in obj.siblings} == {"first", "second"}
    assert len({s.etag for s in obj.siblings}) == 2
    with pytest.raises(riak.ConflictError):
        obj.data  # noqa: B018 - the property raises while siblings exist

    # The last-written resolver, set on the bucket, picks the newer sibling.
    notes5 = c5.bucket_type("siblings").bucket("notes")
    notes5.resolver = last_written_resolver
    resolved = notes5.get("k")
    assert len(resolved.siblings) == 1
    assert resolved.data == "second"
    notes5.resolver = None

    # A custom resolver on the object, used on reload.
    def merge_words(robj):
        merged = robj.siblings[0]
        merged.data = "+".join(sorted(s.data for s in robj.siblings))
        robj.siblings = [merged]

    obj = c1.bucket_type("siblings").bucket("notes").get("k")
    obj.resolver = merge_words
    obj.reload()
    assert obj.data == "first+second"

    # Storing the resolved object (with the siblings' context) collapses them everywhere.
    obj.store()
    for c in node_clients.values():
        final = c.bucket_type("siblings").bucket("notes").get("k")
        assert len(final.siblings) == 1
        assert final.data == "first+second"

    # Read-modify-write with the context never makes a false sibling.
    final.data = "edited"
    final.store()
    assert c3.bucket_type("siblings").bucket("notes").get("k").data == "edited"


# ---------------------------------------------------------------------------- bucket props / types


def test_bucket_properties_set_read_everywhere_and_clear(node_clients):
    """Bucket props are Riak's, reach every node, drive the data path and reset to defaults."""
    c = node_clients["n2"]
    bucket = c.bucket("visits")
    props = bucket.get_properties()
    assert props["n_val"] == 3
    assert props["allow_mult"] is False
    assert props["r"] == "quorum"
    assert props["name"] == "visits"

    bucket.set_properties({"allow_mult": True, "n_val": 2})
    bucket.set_property("r", 1)
    assert bucket.get_property("r") == 1
    assert bucket.allow_mult is True
    wait_for_props(node_clients, lambda x: x.bucket("visits"), {"allow_mult": True, "n_val": 2})

    # allow_mult is in force: two blind writes on different nodes become siblings.
    node_clients["n1"].bucket("visits").new("v", data="a", content_type="text/plain").store()
    node_clients["n4"].bucket("visits").new("v", data="b", content_type="text/plain").store()
    obj = node_clients["n5"].bucket("visits").get("v")
    assert sorted(s.data for s in obj.siblings) == ["a", "b"]

    # A bad value is refused and changes nothing.
    with pytest.raises(riak.RiakError):
        bucket.set_property("n_val", "many")
    with pytest.raises(riak.RiakError):
        bucket.set_property("allow_mult", "perhaps")
    assert bucket.get_properties()["n_val"] == 2

    assert bucket.clear_properties() is True
    wait_for_props(
        node_clients, lambda x: x.bucket("visits"), {"allow_mult": False, "n_val": 3, "r": "quorum"}
    )
    # Other buckets never saw any of it.
    assert c.bucket("other").get_properties()["allow_mult"] is False


def test_bucket_types_props_and_typed_buckets(fresh_node_clients):
    """A bucket type has its own props and its own key space; typed buckets inherit its props."""
    node_clients = fresh_node_clients
    c = node_clients["n3"]
    btype = c.bucket_type("siblings")
    props = btype.get_properties()
    assert props["allow_mult"] is True
    assert props["n_val"] == 3

    btype.set_properties({"notfound_ok": False, "r": 1})
    wait_for_props(
        node_clients, lambda x: x.bucket_type("siblings"), {"notfound_ok": False, "r": 1}
    )
    assert btype.get_property("r") == 1
    # A bucket of the type inherits the type's props; its own props layer on top.
    typed = btype.bucket("patients")
    assert typed.get_properties()["r"] == 1
    assert typed.get_properties()["allow_mult"] is True
    typed.set_property("n_val", 2)
    wait_for_props(
        node_clients, lambda x: x.bucket_type("siblings").bucket("patients"), {"n_val": 2}
    )
    assert btype.get_properties()["n_val"] == 3
    # The default type is untouched.
    assert c.bucket("patients").get_properties()["allow_mult"] is False

    # Same bucket and key names in two types are two objects.
    typed.new("p1", data={"type": "siblings"}).store()
    c.bucket("patients").new("p1", data={"type": "default"}).store()
    other = node_clients["n1"]
    assert other.bucket_type("siblings").bucket("patients").get("p1").data == {"type": "siblings"}
    assert other.bucket("patients").get("p1").data == {"type": "default"}
    other.bucket_type("siblings").bucket("patients").delete("p1")
    assert not other.bucket_type("siblings").bucket("patients").get("p1").exists
    assert other.bucket("patients").get("p1").data == {"type": "default"}

    # A type that does not exist is an error, as in Riak.
    with pytest.raises(riak.RiakError):
        c.bucket_type("no_such_type").get_properties()
    with pytest.raises(riak.RiakError):
        c.bucket_type("no_such_type").bucket("b").get("k")


# ---------------------------------------------------------------------------- 2i


def _store_people(bucket):
    """Five people with _bin and _int indexes (ages 18, 25, 33, 40, 67)."""
    people = {
        "p1": ("ann@example.org", 18, ["red"]),
        "p2": ("bob@example.org", 25, ["red", "blue"]),
        "p3": ("cat@example.org", 33, ["blue"]),
        "p4": ("dan@example.org", 40, ["red"]),
        "p5": ("bea@example.org", 67, []),
    }
    for key, (email, age, tags) in people.items():
        obj = bucket.new(key, data={"email": email})
        obj.add_index("email_bin", email)
        obj.add_index("age_int", age)
        for tag in tags:
            obj.add_index("tag_bin", tag)
        obj.store()
    return people


def test_secondary_index_queries(client):
    """Exact and range queries, return_terms, term_regex, $bucket, $key, updates and deletes."""
    bucket = client.bucket("staff")  # not "people": the object test's keys share the cluster
    _store_people(bucket)
    client.bucket("elsewhere").new("x1", data={}).store()

    assert sorted(bucket.get_index("tag_bin", "red")) == ["p1", "p2", "p4"]
    assert sorted(bucket.get_index("email_bin", "cat@example.org")) == ["p3"]
    assert list(bucket.get_index("tag_bin", "green")) == []
    assert sorted(bucket.get_index("age_int", 20, 40)) == ["p2", "p3", "p4"]
    assert sorted(bucket.get_index("age_int", 40)) == ["p4"]

    # Range with terms: (term, key) in term order, _int terms as integers.
    assert list(bucket.get_index("age_int", 18, 33, return_terms=True)) == [
        (18, "p1"),
        (25, "p2"),
        (33, "p3"),
    ]
    assert list(bucket.get_index("email_bin", "b", "c", return_terms=True)) == [
        ("bea@example.org", "p5"),
        ("bob@example.org", "p2"),
    ]
    # An exact query with return_terms: Riak answers keys; the client pairs them with the term.
    assert sorted(bucket.get_index("tag_bin", "blue", return_terms=True)) == [
        ("blue", "p2"),
        ("blue", "p3"),
    ]
    assert sorted(bucket.get_index("email_bin", "a", "z", term_regex="^b")) == ["p2", "p5"]

    # Special indexes: every key of the bucket, and a key range.
    assert sorted(bucket.get_index("$bucket", "staff")) == ["p1", "p2", "p3", "p4", "p5"]
    assert sorted(bucket.get_index("$key", "p2", "p4")) == ["p2", "p3", "p4"]

    # Updating an object replaces its index entries; deleting removes them.
    p1 = bucket.get("p1")
    p1.remove_index("tag_bin", "red")
    p1.add_index("tag_bin", "green")
    p1.store()
    assert sorted(bucket.get_index("tag_bin", "red")) == ["p2", "p4"]
    assert list(bucket.get_index("tag_bin", "green")) == ["p1"]
    bucket.delete("p4")
    assert sorted(bucket.get_index("tag_bin", "red")) == ["p2"]
    assert sorted(bucket.get_index("age_int", 0, 100)) == ["p1", "p2", "p3", "p5"]

    # Typed buckets have their own indexes.
    typed = client.bucket_type("siblings").bucket("people")
    obj = typed.new("t1", data={})
    obj.add_index("tag_bin", "red")
    obj.store()
    assert list(typed.get_index("tag_bin", "red")) == ["t1"]
    assert sorted(bucket.get_index("tag_bin", "red")) == ["p2"]


def test_index_pagination_and_streaming(client):
    """max_results pages with continuations, paginate_index, stream_index, paginate_stream_index."""
    bucket = client.bucket("ward")
    keys = [f"k{i:02d}" for i in range(7)]
    for i, key in enumerate(keys):
        obj = bucket.new(key, data={"i": i})
        obj.add_index("ward_bin", "w1")
        obj.add_index("bed_int", 100 + i)
        obj.store()

    page = client.get_index(bucket, "ward_bin", "w1", max_results=3)
    assert list(page) == keys[:3]
    assert page.has_next_page()
    assert page.continuation
    page2 = page.next_page()
    assert list(page2) == keys[3:6]
    page3 = page2.next_page()
    assert list(page3) == keys[6:]
    assert not page3.has_next_page()

    # A continuation handed back explicitly resumes where the page ended.
    resumed = client.get_index(
        bucket, "ward_bin", "w1", max_results=3, continuation=page.continuation
    )
    assert list(resumed) == keys[3:6]

    # Range with terms, paged: results stay in (term, key) order across pages.
    pages = list(bucket.paginate_index("bed_int", 100, 105, max_results=4, return_terms=True))
    assert [list(p) for p in pages] == [
        [(100 + i, keys[i]) for i in range(4)],
        [(104, keys[4]), (105, keys[5])],
    ]

    # Streaming: chunks of keys, the same answer.
    with closing(bucket.stream_index("ward_bin", "w1")) as stream:
        streamed = [key for chunk in stream for key in chunk]
    assert sorted(streamed) == keys
    with closing(bucket.stream_index("bed_int", 102, 104, return_terms=True)) as stream:
        streamed = [pair for chunk in stream for pair in chunk]
    assert sorted(streamed) == [(102, keys[2]), (103, keys[3]), (104, keys[4])]

    # Streaming with pages: each page streams its part and hands over the continuation.
    seen = []
    for streamed_page in bucket.paginate_stream_index("ward_bin", "w1", max_results=3):
        with closing(streamed_page):
            seen.append([key for chunk in streamed_page for key in chunk])
    assert seen == [keys[:3], keys[3:6], keys[6:]]


# ---------------------------------------------------------------------------- listing


def test_list_and_stream_keys_and_buckets(fresh_client):
    """Keys of a bucket and the buckets of a type, listed and streamed, typed and untyped."""
    client = fresh_client
    for i in range(12):
        client.bucket("alpha").new(f"a{i}", data=i).store()
    client.bucket("beta").new("b0", data=0).store()
    btype = client.bucket_type("siblings")
    btype.bucket("gamma").new("g0", data=0).store()
    btype.bucket("gamma").new("g1", data=1).store()

    assert sorted(client.bucket("alpha").get_keys()) == sorted(f"a{i}" for i in range(12))
    with closing(client.bucket("alpha").stream_keys()) as stream:
        streamed = [key for chunk in stream for key in chunk]
    assert sorted(streamed) == sorted(f"a{i}" for i in range(12))
    assert client.bucket("beta").get_keys() == ["b0"]
    assert client.bucket("empty").get_keys() == []

    assert sorted(btype.bucket("gamma").get_keys()) == ["g0", "g1"]
    with closing(btype.bucket("gamma").stream_keys()) as stream:
        assert sorted(key for chunk in stream for key in chunk) == ["g0", "g1"]

    default_buckets = client.get_buckets()
    assert {b.name for b in default_buckets} == {"alpha", "beta"}
    assert all(b.bucket_type.is_default() for b in default_buckets)
    with closing(client.stream_buckets()) as stream:
        assert {b.name for chunk in stream for b in chunk} == {"alpha", "beta"}

    typed_buckets = btype.get_buckets()
    assert [b.name for b in typed_buckets] == ["gamma"]
    assert typed_buckets[0].bucket_type == btype
    with closing(btype.stream_buckets()) as stream:
        assert [b.name for chunk in stream for b in chunk] == ["gamma"]

    # A deleted key leaves the listing.
    client.bucket("beta").delete("b0")
    eventually_sync(lambda: client.bucket("beta").get_keys() == [], what="b0 to leave the key list")


# ---------------------------------------------------------------------------- multi ops


def test_multiput_and_multiget(client):
    """Parallel stores and fetches through the client's thread pools, typed and untyped."""
    plain = client.bucket("batch")
    typed = client.bucket_type("siblings").bucket("batch")
    objs = [plain.new(f"m{i}", data={"i": i}) for i in range(8)]
    objs += [typed.new(f"m{i}", data={"typed": i}) for i in range(4)]

    stored = client.multiput(objs, return_body=True)
    failures = [r for r in stored if isinstance(r, tuple)]
    assert failures == []
    assert all(r.exists for r in stored)

    pairs = [("default", "batch", f"m{i}") for i in range(8)]
    pairs += [("siblings", "batch", f"m{i}") for i in range(4)]
    pairs.append(("default", "batch", "missing"))
    fetched = client.multiget(pairs)
    failures = [r for r in fetched if isinstance(r, tuple)]
    assert failures == []
    by_id = {(o.bucket.bucket_type.name, o.key): o for o in fetched}
    for i in range(8):
        assert by_id[("default", f"m{i}")].data == {"i": i}
    for i in range(4):
        assert by_id[("siblings", f"m{i}")].data == {"typed": i}
    assert not by_id[("default", "missing")].exists

    in_bucket = plain.multiget([f"m{i}" for i in range(3)])
    assert sorted(o.data["i"] for o in in_bucket) == [0, 1, 2]


# ---------------------------------------------------------------------------- counters


def test_legacy_counters(node_clients):
    """Riak 1.4 counters: need allow_mult, count up and down, read the same on every node."""
    c = node_clients["n1"]
    plain = c.bucket("no_mult")
    with pytest.raises(riak.RiakError):
        plain.update_counter("hits", 1)  # Riak refuses counters without allow_mult

    counters = c.bucket("counters")
    counters.set_property("allow_mult", True)
    wait_for_props(node_clients, lambda x: x.bucket("counters"), {"allow_mult": True})

    assert counters.get_counter("hits") is None
    assert counters.update_counter("hits", 10) is True
    assert counters.get_counter("hits") == 10
    assert counters.update_counter("hits", 5, returnvalue=True) == 15
    assert counters.update_counter("hits", -5, returnvalue=True) == 10

    # Increments from different nodes add up; every node reads the total.
    for name in ("n2", "n3", "n4"):
        node_clients[name].bucket("counters").update_counter("hits", 1)
    for name, nc in node_clients.items():
        assert nc.bucket("counters").get_counter("hits") == 13, name
    assert c.bucket("counters").get_counter("other") is None
