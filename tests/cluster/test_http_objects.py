"""Riak's object headers and conditional requests against real node processes over LevelDB."""

from __future__ import annotations

import time

from spinekv.http.riakheaders import parse_http_date


def test_object_metadata_and_preconditions_hold_across_real_nodes(cluster):
    """A curl user's session: metadata in, Riak's headers out everywhere, conditional writes."""
    path = "/buckets/people/keys/ann"
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Riak-Meta-Author": "clinic-7",
        "X-Riak-Index-Email_bin": "ann@example.org",
        "X-Riak-Index-age_int": "42, 7",
        "Link": '</buckets/people/keys/bob>; riaktag="friend"',
        "If-None-Match": "*",
    }
    before = int(time.time())
    r = cluster.request("PUT", "n1", path + "?w=3", b'{"name":"Ann"}', headers)
    assert r.status == 204, r.body
    after = int(time.time())
    # Every node reads the metadata back from its LevelDB replicas as Riak shows it.
    etags, modified = set(), set()
    for name in cluster.config.node_names():
        r = cluster.request("GET", name, path)
        assert (r.status, r.body) == (200, b'{"name":"Ann"}')
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
        assert r.headers["X-Riak-Meta-Author"] == "clinic-7"
        assert r.headers["X-Riak-Index-email_bin"] == "ann@example.org"
        assert r.headers["X-Riak-Index-age_int"] == "7, 42"
        assert r.headers["Link"] == (
            '</buckets/people/keys/bob>; riaktag="friend", </buckets/people>; rel="up"'
        )
        modified.add(parse_http_date(r.headers["Last-Modified"]))
        etags.add(r.headers["ETag"])
    assert len(etags) == 1
    (stamp,) = modified  # the time of the write, the same from every node
    assert before <= stamp <= after
    (etag,) = etags

    # Create-only refuses the existing key; a stale If-Match refuses; the right one writes.
    text = {"Content-Type": "text/plain"}
    assert cluster.request("PUT", "n2", path, b"x", {**text, "If-None-Match": "*"}).status == 412
    assert cluster.request("PUT", "n3", path, b"x", {**text, "If-Match": '"old"'}).status == 412
    assert cluster.request("GET", "n4", path, headers={"If-None-Match": etag}).status == 304
    r = cluster.request("PUT", "n5", path + "?returnbody=true", b"v2", {**text, "If-Match": etag})
    assert (r.status, r.body) == (200, b"v2")
    assert r.headers["ETag"] != etag
    # Bad input changes nothing; an unknown type is Riak's 404.
    bad = {**text, "X-Riak-Index-age_int": "old"}
    r = cluster.request("PUT", "n1", path, b"bad", bad)
    assert (r.status, r.body) == (400, b"Could not parse field 'age_int', value 'old'.\n")
    r = cluster.request("PUT", "n1", "/types/nosuch/buckets/people/keys/ann", b"x", text)
    assert (r.status, r.body) == (404, b"Unknown bucket type: nosuch\n")
    assert cluster.request("GET", "n2", path).body == b"v2"

    # DELETE: 204, then the key reads 404 and a second DELETE is a 404, as in Riak.
    assert cluster.request("DELETE", "n3", path + "?w=3").status == 204
    assert cluster.request("GET", "n4", path).status == 404
    assert cluster.request("DELETE", "n5", path).status == 404
