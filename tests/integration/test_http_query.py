"""2i queries, key and bucket listing and legacy counters over HTTP, on an in-process cluster."""

from __future__ import annotations

import asyncio
import json
import re

from spinekv.node.coordinator import BKey
from spinekv.object import Content
from spinekv.quorum import PutOptions
from tests.support import eventually


async def put(c, node, btype, bucket, key, indexes=(), value=b"v", deleted=False):
    n = c.nodes[node]
    props = c.config.bucket_type(btype)
    # A tombstone is newer than the value, so the default type's last-write-wins keeps it.
    content = Content(value, "text/plain", 2 if deleted else 1, deleted, indexes=tuple(indexes))
    result = await n.coordinator.put(
        BKey(btype.encode(), bucket.encode(), key.encode()), props, {}, content, PutOptions(w=3)
    )
    return result.obj


async def people(c, count=40):
    """Keys p00.. with age_int = i % 10 and city_bin in a rota of four cities."""
    cities = ["leeds", "london", "luton", "york"]
    for i in range(count):
        await put(
            c,
            f"n{i % 5 + 1}",
            "default",
            "people",
            f"p{i:02d}",
            [("age_int", i % 10), ("city_bin", cities[i % 4])],
        )


async def get_json(http, url):
    async with http.get(url) as r:
        text = await r.text()
        assert r.status == 200, (url, r.status, text)
        return json.loads(text)


async def allow_mult(http, props_url: str) -> bool:
    return (await get_json(http, props_url))["props"]["allow_mult"]


async def test_exact_range_and_return_terms(cluster, http):
    await people(cluster)
    base = cluster.url("n3") + "/buckets/people/index"
    got = await get_json(http, base + "/age_int/3")
    assert got == {"keys": ["p03", "p13", "p23", "p33"]}
    got = await get_json(http, base + "/city_bin/le/lu")  # leeds and london, not luton
    # In term order, then key order (as Riak pages them).
    assert got["keys"] == [f"p{i:02d}" for c in (0, 1) for i in range(40) if i % 4 == c]
    got = await get_json(http, base + "/age_int/8/9?return_terms=true")
    pairs = [next(iter(d.items())) for d in got["results"]]
    assert pairs == sorted(
        [(str(i % 10), f"p{i:02d}") for i in range(40) if i % 10 >= 8],
        key=lambda p: (int(p[0]), p[1]),
    )
    got = await get_json(http, base + "/city_bin/a/z?term_regex=^l.*n$&return_terms=true")
    assert {next(iter(d)) for d in got["results"]} == {"london", "luton"}


async def test_pages_follow_continuations_to_every_result_exactly_once(cluster, http):
    await people(cluster)
    url = cluster.url("n1") + "/buckets/people/index/age_int/0/9?max_results=7&return_terms=true"
    seen = []
    pages = 0
    continuation = None
    while True:
        page = await get_json(http, url + (f"&continuation={continuation}" if continuation else ""))
        pages += 1
        assert len(page["results"]) <= 7
        seen += [next(iter(d.items())) for d in page["results"]]
        continuation = page.get("continuation")
        if continuation is None:
            break
    assert pages == 6  # 40 results: five full pages, then the last 5 and no continuation
    assert len(seen) == 40 and len(set(seen)) == 40
    assert seen == sorted(seen, key=lambda p: (int(p[0]), p[1]))


async def test_special_indexes_and_listing_skip_deleted_keys(cluster, http):
    await people(cluster, 12)
    await put(cluster, "n2", "default", "people", "p05", deleted=True)
    await put(cluster, "n2", "default", "pets", "rex")
    await put(cluster, "n2", "siblings", "patients", "9990000018")
    live = [f"p{i:02d}" for i in range(12) if i != 5]
    base = cluster.url("n4")
    assert (await get_json(http, base + "/buckets/people/index/$bucket/people"))["keys"] == live
    got = await get_json(http, base + "/buckets/people/index/$key/p03/p07")
    assert got["keys"] == ["p03", "p04", "p06", "p07"]
    assert (await get_json(http, base + "/buckets/people/keys?keys=true"))["keys"] == live
    assert (await get_json(http, base + "/buckets?buckets=true"))["buckets"] == ["people", "pets"]
    typed = await get_json(http, base + "/types/siblings/buckets?buckets=true")
    assert typed["buckets"] == ["patients"]
    got = await get_json(http, base + "/types/siblings/buckets/patients/keys?keys=true")
    assert got["keys"] == ["9990000018"]

    # Streamed: a run of JSON objects, each with some of the keys.
    async with http.get(base + "/buckets/people/keys?keys=stream") as r:
        assert r.status == 200
        body = await r.text()
    chunks = [json.loads(c + "}") for c in body.split("}") if c]
    assert sorted(k for c in chunks for k in c["keys"]) == live
    async with http.get(base + "/buckets?buckets=stream") as r:
        chunks = [json.loads(c + "}") for c in (await r.text()).split("}") if c]
    assert sorted(b for c in chunks for b in c["buckets"]) == ["people", "pets"]


async def test_streamed_index_results_come_as_multipart_json_parts(cluster, http):
    await people(cluster, 20)
    url = cluster.url("n2") + "/buckets/people/index/age_int/0/4?stream=true"
    async with http.get(url) as r:
        assert r.status == 200
        boundary = re.search(r"boundary=(\S+)", r.headers["Content-Type"]).group(1)
        body = await r.text()
    parts = [p for p in body.split(f"--{boundary}") if p.strip() not in ("", "--")]
    keys = []
    for part in parts:
        head, payload = part.split("\r\n\r\n", 1)
        assert "application/json" in head
        keys += json.loads(payload)["keys"]
    assert sorted(keys) == [f"p{i:02d}" for i in range(20) if i % 10 <= 4]


async def test_queries_still_cover_everything_with_a_node_down(cluster, http):
    await people(cluster)
    await cluster.stop("n2")
    n1 = cluster.nodes["n1"]
    await eventually(lambda: not n1.membership.is_up("n2"), what="n1 to see n2 down")
    got = await get_json(http, cluster.url("n1") + "/buckets/people/keys?keys=true")
    assert len(got["keys"]) == 40
    got = await get_json(http, cluster.url("n1") + "/buckets/people/index/age_int/0/9")
    assert len(got["keys"]) == 40


async def test_bad_queries_get_400_with_the_reason(cluster, http):
    base = cluster.url("n1") + "/buckets/people"
    cases = {
        "/index/age_int/ten": "integer",
        "/index/age/1": "_bin or _int",
        "/index/age_int/1/5?max_results=0": "max_results",
        "/index/age_int/1/5?max_results=x": "max_results",
        "/index/age_int/1/5?continuation=garbage": "continuation",
        "/index/city_bin/a?term_regex=a": "term_regex",
        "/index/city_bin/a/b?term_regex=(": "term_regex",
        "/index/age_int/1/5?return_terms=maybe": "return_terms",
        "/index/age_int/1/5?return_terms=1": "return_terms",  # Riak's index takes true|false
        "/index/age_int/1/5?stream=yes": "stream",
        "/index/age_int/1?timeout=-1": "timeout",
        "/index/age_int/9/1": "after its end",
        "/keys": "keys=true",
        "/keys?keys=all": "keys=true",
        "/index/age_int/1?timeout=soon": "timeout",
        "/index/age_int/1?timeout=%C2%B2": "timeout",  # a digit to isdigit(), not to int()
        "/keys?keys=true&timeout=%C2%B2": "timeout",
        "/index/age_int/1/5?max_results=%C2%B2": "max_results",
        "/index/age_int/1/5?max_results=99999999999999999999999": "max_results",
    }
    for path, reason in cases.items():
        async with http.get(base + path) as r:
            assert r.status == 400, path
            assert reason in await r.text(), path
    async with http.get(cluster.url("n1") + "/buckets?buckets=maybe") as r:
        assert r.status == 400
    async with http.get(cluster.url("n1") + "/types/nosuch/buckets/b/keys?keys=true") as r:
        assert r.status == 404 and "nosuch" in await r.text()


async def test_counters_need_allow_mult_and_sum_concurrent_increments(cluster, http):
    url = "/buckets/hits/counters/page"
    async with http.post(cluster.url("n1") + url, data=b"1") as r:
        assert r.status == 409 and "allow_mult" in await r.text()
    async with http.put(
        cluster.url("n1") + "/buckets/hits/props", json={"props": {"allow_mult": True}}
    ) as r:
        assert r.status == 204
    async with http.get(cluster.url("n1") + url) as r:
        assert r.status == 404
    for node in cluster.nodes:  # every coordinator must have the props by gossip
        await eventually(
            lambda node=node: allow_mult(http, cluster.url(node) + "/buckets/hits/props"),
            what=f"allow_mult to reach {node}",
        )

    async def bump(node, delta):
        for _ in range(5):
            async with http.post(cluster.url(node) + url, data=str(delta).encode()) as r:
                assert r.status == 204, await r.text()

    # Increments coordinated on every node at once become siblings; none may be lost.
    await asyncio.gather(*(bump(f"n{i}", i) for i in range(1, 6)), bump("n3", -2))
    expected = 5 * (1 + 2 + 3 + 4 + 5) - 10
    for node in ("n1", "n4"):
        async with http.get(cluster.url(node) + url) as r:
            assert r.status == 200 and int(await r.text()) == expected
    async with http.post(cluster.url("n2") + url + "?returnvalue=true", data=b"-5") as r:
        assert r.status == 200 and int(await r.text()) == expected - 5
    for body in (b"one", b"", b"1.5", b"9" * 30):
        async with http.post(cluster.url("n2") + url, data=body) as r:
            assert r.status == 400, body
    async with http.get(cluster.url("n5") + url) as r:
        assert int(await r.text()) == expected - 5  # the bad bodies changed nothing


async def test_names_in_paths_decode_plus_as_a_space_everywhere_as_riak_does(cluster, http):
    # Riak's clients quote with quote_plus: "my bucket" travels as my+bucket.
    url = cluster.url("n1") + "/buckets/my+bucket/keys/a+b%2Bc"
    headers = {"Content-Type": "text/plain", "X-Riak-Index-tag_bin": "red"}
    async with http.put(url, data=b"v", headers=headers) as r:
        assert r.status == 204
    base = cluster.url("n2")
    got = await get_json(http, base + "/buckets/my+bucket/index/tag_bin/red")
    assert got["keys"] == ["a b+c"]
    assert (await get_json(http, base + "/buckets/my%20bucket/keys?keys=true"))["keys"] == ["a b+c"]
    assert "my bucket" in (await get_json(http, base + "/buckets?buckets=true"))["buckets"]
    plus = await get_json(http, base + "/buckets/my+bucket/keys/a+b%2Bc/preflist")
    assert plus == await get_json(http, base + "/buckets/my%20bucket/keys/a%20b%2Bc/preflist")
    replicas = await get_json(
        http, base + "/admin/replicas/types/default/buckets/my+bucket/keys/a+b%2Bc"
    )
    # w=quorum: two replicas have acknowledged; the third may still be on its way.
    assert [r["status"] for r in replicas["replicas"]].count("found") >= 2


async def test_flags_and_listing_modes_are_read_in_any_case_and_timeout_0_is_the_default(
    cluster, http
):
    await people(cluster, count=12)
    base = cluster.url("n3") + "/buckets/people"
    assert (await get_json(http, base + "/keys?keys=TRUE"))["keys"] == (
        await get_json(http, base + "/keys?keys=true")
    )["keys"]
    both = await get_json(http, base + "/index/age_int/0/9?return_terms=TRUE&timeout=0")
    assert both == await get_json(http, base + "/index/age_int/0/9?return_terms=true")
    assert len(both["results"]) == 12
    listed = await get_json(http, cluster.url("n3") + "/buckets?buckets=True&timeout=0")
    assert "people" in listed["buckets"]


async def test_a_plain_write_cannot_pose_as_a_counter_increment(cluster, http):
    url = cluster.url("n1") + "/buckets/b/keys/k"
    headers = {"Content-Type": "application/x-spinekv-counter-increment"}
    async with http.put(url, data=b"5", headers=headers) as r:
        assert r.status == 415 and "reserved" in await r.text()
    async with http.get(url) as r:
        assert r.status == 404


async def test_bucket_props_name_the_bucket_the_objects_use(cluster, http):
    # "my bucket" as the riak client sends it (quote_plus): props and objects must agree.
    async with http.put(
        cluster.url("n1") + "/buckets/my+bucket/props", json={"props": {"allow_mult": True}}
    ) as r:
        assert r.status == 204
    url = cluster.url("n2") + "/buckets/my%20bucket/props"
    await eventually(lambda: allow_mult(http, url), what="allow_mult to reach n2 by gossip")
