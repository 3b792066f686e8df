"""Operator folds (/admin/fold) on an in-process cluster: stats, find-keys and erase against
known data, each partition counted once; listings and 2i skip what erase tombstoned."""

from __future__ import annotations

import json

from spinekv.node.coordinator import BKey
from spinekv.object import Content, tombstone
from spinekv.quorum import PutOptions


async def put(c, node, btype, bucket, key, content):
    props = c.config.bucket_type(btype)
    bkey = BKey(btype.encode(), bucket.encode(), key.encode())
    return await c.nodes[node].coordinator.put(bkey, props, {}, content, PutOptions(w=3))


async def load(c):
    """default/people p00..p11 (age_int = i) with p03 and p07 deleted; default/big/large of
    20 kB; siblings/s/dup with three siblings (blind writes) and siblings/s/one."""
    for i in range(12):
        content = Content(b"v", "text/plain", 1, indexes=(("age_int", i),))
        await put(c, f"n{i % 5 + 1}", "default", "people", f"p{i:02d}", content)
    for key in ("p03", "p07"):
        await put(c, "n2", "default", "people", key, tombstone(2))
    await put(c, "n1", "default", "big", "large", Content(b"x" * 20_000))
    for node in ("n1", "n2", "n3"):
        await put(c, node, "siblings", "s", "dup", Content(node.encode()))
    await put(c, "n4", "siblings", "s", "one", Content(b"1"))


async def call(http, method, url):
    async with http.request(method, url) as r:
        return r.status, json.loads(await r.text())


async def test_object_stats_count_each_object_once(cluster, http):
    await load(cluster)
    base = cluster.url("n2") + "/admin/fold/object-stats"
    status, people = await call(http, "GET", base + "?bucket=people")
    assert status == 200, people
    assert (people["count"], people["tombstones"]) == (12, 2)
    assert people["siblings"] == {"1": 12}
    _, typed = await call(http, "GET", base + "?type=siblings")
    assert (typed["count"], typed["tombstones"]) == (2, 0)
    assert typed["siblings"] == {"1": 1, "3": 1}
    _, whole = await call(http, "GET", base)
    assert (whole["count"], whole["tombstones"]) == (15, 2)
    assert whole["largest_bytes"] > 20_000
    assert whole["total_bytes"] > 20_000 + 14 * 10


async def test_find_keys_over_a_sibling_count_or_a_size(cluster, http):
    await load(cluster)
    base = cluster.url("n5") + "/admin/fold/find-keys"
    status, many = await call(http, "GET", base + "?siblings=1")
    assert status == 200, many
    assert [(k["type"], k["bucket"], k["key"], k["siblings"]) for k in many["keys"]] == [
        ("siblings", "s", "dup", 3)
    ]
    _, big = await call(http, "GET", base + "?size=10000")
    assert [(k["bucket"], k["key"]) for k in big["keys"]] == [("big", "large")]
    _, none = await call(http, "GET", base + "?size=10000&type=siblings")
    assert none["keys"] == []


async def test_erase_tombstones_the_matching_keys_and_listings_skip_them(cluster, http):
    # Kept, so the tombstones counted below are not a race with the reaper.
    await cluster.set_props(http, "default", "people", {"delete_mode": "keep"})
    await load(cluster)
    base = cluster.url("n1")
    status, dry = await call(
        http, "POST", base + "/admin/fold/erase?bucket=people&prefix=p0&dry_run=true"
    )
    assert (status, dry) == (200, {"found": 8})  # p00..p09 but the two deleted already
    status, done = await call(http, "POST", base + "/admin/fold/erase?bucket=people&prefix=p0")
    assert status == 200, done
    assert (done["found"], done["erased"], done["failed"]) == (8, 8, [])

    _, listed = await call(http, "GET", base + "/buckets/people/keys?keys=true")
    assert listed["keys"] == ["p10", "p11"]
    _, by_bucket = await call(http, "GET", base + "/buckets/people/index/$bucket/people")
    assert by_bucket["keys"] == ["p10", "p11"]
    _, by_age = await call(http, "GET", base + "/buckets/people/index/age_int/0/20")
    assert by_age["keys"] == ["p10", "p11"]
    _, stats = await call(http, "GET", base + "/admin/fold/object-stats?bucket=people")
    assert stats["tombstones"] == 10
    # Through the coordinator's delete: every replica holds the tombstone.
    _, replicas = await call(
        http, "GET", base + "/admin/replicas/types/default/buckets/people/keys/p04"
    )
    assert [r["status"] for r in replicas["replicas"]] == ["tombstone"] * 3


async def test_folds_refuse_bad_parameters(cluster, http):
    base = cluster.url("n1") + "/admin/fold"
    for method, path, status in [
        ("GET", "/find-keys", 400),
        ("GET", "/find-keys?siblings=1&size=2", 400),
        ("GET", "/find-keys?siblings=-1", 400),
        ("GET", "/object-stats?type=nosuch", 400),
        ("GET", "/object-stats?type=records", 403),
        ("POST", "/erase?type=default", 400),
        ("POST", "/erase?bucket=b&rate=0", 400),
    ]:
        got, body = await call(http, method, base + path)
        assert got == status, (path, body)
        assert body["error"]
