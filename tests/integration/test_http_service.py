"""The service resources: GET / (Riak's resource map), /ping, /stats, preflists, /openapi.json."""

from __future__ import annotations

import json
import re

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from openapi_spec_validator import validate

from spinekv.http.service import (
    RIAK_RESOURCES,
    stats_middleware,
)
from spinekv.stats import NodeStats
from tests.inproc import inproc_cluster
from tests.support import eventually


async def _json(http, url, **kwargs):
    async with http.get(url, **kwargs) as r:
        assert r.status == 200, await r.text()
        return await r.json()


# ------------------------------------------------------------------ GET /


async def test_resource_map_as_json_lists_what_the_riak_client_needs(cluster, http):
    async with http.get(cluster.url("n1") + "/", headers={"Accept": "application/json"}) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        served = await r.json()
        link = r.headers["Link"]
    # Always served by this node: objects (plain and typed), ping, stats, preflists.
    assert served["riak_kv_wm_object"] == "/buckets"
    assert served["riak_kv_wm_bucket_type"] == "/types"
    assert served["riak_kv_wm_ping"] == "/ping"
    assert served["riak_kv_wm_stats"] == "/stats"
    assert served["riak_kv_wm_preflist"] == "/buckets"
    # Never offered: resources spinekv does not have.
    for absent in (
        "riak_kv_wm_mapred",
        "riak_kv_wm_link_walker",
        "riak_kv_wm_crdt",
        "yz_wm_search",
    ):
        assert absent not in served
    assert all(isinstance(path, str) and path.startswith("/") for path in served.values())
    assert '</ping>; rel="riak_kv_wm_ping"' in link


async def test_resource_map_offers_exactly_the_resources_the_app_routes(cluster, http):
    """Each advertised resource's probe request resolves to a real route, and none is missing."""
    app = cluster.nodes["n1"].http_app()
    async with http.get(cluster.url("n1") + "/", headers={"Accept": "application/json"}) as r:
        served = await r.json()
    for name, _, method, probe in RIAK_RESOURCES:
        request = make_mocked_request(method, probe, app=app)
        match = await app.router.resolve(request)
        routed = match.http_exception is None
        assert (name in served) == routed, (name, probe)


async def test_resource_map_as_html_by_default_and_406_for_other_types(cluster, http):
    async with http.get(cluster.url("n2") + "/") as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        html = await r.text()
    assert '<a href="/ping">riak_kv_wm_ping</a>' in html
    assert '<a href="/types">riak_kv_wm_bucket_type</a>' in html
    async with http.get(cluster.url("n2") + "/", headers={"Accept": "image/png"}) as r:
        assert r.status == 406
        assert "application/json" in await r.text()


# ------------------------------------------------------------------ /ping and /stats


async def test_ping_answers_ok_on_every_node(cluster, http):
    for name in cluster.nodes:
        async with http.get(cluster.url(name) + "/ping") as r:
            assert r.status == 200
            assert await r.text() == "OK"


async def test_stats_describes_the_node_and_the_ring(cluster, http):
    stats = await _json(http, cluster.url("n3") + "/stats")
    version = re.match(r"(\d+)\.(\d+)\.(\d+)", stats["riak_kv_version"])
    # The riak client enables bucket types, preflists and write_once from 2.1.0 on.
    assert version and tuple(map(int, version.groups())) >= (2, 1, 0)
    assert stats["nodename"] == "n3"
    assert sorted(stats["connected_nodes"]) == ["n1", "n2", "n4", "n5"]
    assert stats["ring_members"] == ["n1", "n2", "n3", "n4", "n5"]
    assert stats["ring_num_partitions"] == 16
    assert stats["storage_backend"] == "riak_kv_memory_backend"
    owned = re.findall(r"\{(\w+),(\d+)\}", stats["ring_ownership"])
    assert sorted(name for name, _ in owned) == stats["ring_members"]
    assert sum(int(count) for _, count in owned) == 16


async def test_stats_count_this_nodes_gets_and_puts_with_latencies(cluster, http):
    base = cluster.url("n1")
    before = await _json(http, base + "/stats")
    for i in range(3):
        async with http.put(f"{base}/buckets/s/keys/k{i}", data=b"v") as r:
            assert r.status == 204
    for i in range(4):
        async with http.get(f"{base}/buckets/s/keys/k{i}") as r:
            assert r.status == 200 if i < 3 else 404
    async with http.get(f"{base}/buckets/s/keys/k0?r=99") as r:
        assert r.status == 400  # refused: not a get, but a 4xx
    async with http.delete(f"{base}/buckets/s/keys/k0") as r:
        assert r.status == 204
    after = await _json(http, base + "/stats")
    assert after["node_gets_total"] - before["node_gets_total"] == 4
    assert after["node_puts_total"] - before["node_puts_total"] == 4  # 3 PUTs and a DELETE
    assert after["node_gets"] >= 4 and after["node_puts"] >= 4
    assert after["http_4xx_total"] - before["http_4xx_total"] == 2  # the 404 and the 400
    for op in ("get", "put"):
        times = [after[f"node_{op}_fsm_time_{s}"] for s in ("median", "95", "99", "100")]
        assert times == sorted(times)
        assert times[-1] > 0
        assert 0 < after[f"node_{op}_fsm_time_mean"] <= times[-1]
    # Statistics are per node: n2 saw none of this.
    other = await _json(http, cluster.url("n2") + "/stats")
    assert other["node_gets_total"] == 0 and other["node_puts_total"] == 0


AAE_COUNTERS = (
    "aae_exchanges_in_sync",
    "aae_exchanges_repaired",
    "aae_exchanges_unconfirmed",
    "aae_exchanges_skipped",
    "aae_keys_repaired",
    "aae_tree_rebuilds",
    "tombstones_reaped",
)


async def test_stats_count_tree_rebuilds_and_reaped_tombstones(cluster, http):
    node = cluster.nodes["n2"]
    await node.aae.settled()
    stats = await _json(http, cluster.url("n2") + "/stats")
    # A fresh node has no persisted trees: each of its trees was rebuilt once.
    assert stats["aae_tree_rebuilds"] == len(node.aae.slots) > 0
    assert stats["tombstones_reaped"] == 0
    assert all(type(stats[name]) is int for name in AAE_COUNTERS)


async def test_stats_aae_counters_are_zero_with_aae_off(tmp_path, http):
    async with inproc_cluster(tmp_path, 1, extra="[aae]\nenabled = false\n") as off:
        stats = await _json(http, off.url("n1") + "/stats")
    assert {name: stats[name] for name in AAE_COUNTERS} == dict.fromkeys(AAE_COUNTERS, 0)


async def test_stats_as_text_plain_is_pretty_printed_json(cluster, http):
    async with http.get(cluster.url("n1") + "/stats", headers={"Accept": "text/plain"}) as r:
        assert r.status == 200
        assert r.content_type == "text/plain"
        text = await r.text()
    assert "\n    " in text
    assert json.loads(text)["nodename"] == "n1"


async def test_middleware_counts_handler_failures_and_http_errors():
    stats = NodeStats(lambda: 0.0)

    async def boom(request):
        assert stats.backlog == 1  # this request, accepted and not yet answered
        raise RuntimeError("bug")

    async def missing(request):
        raise web.HTTPNotFound(text="no")

    app = web.Application(middlewares=[stats_middleware(stats, lambda: 0.0)])
    app.add_routes([web.get("/boom", boom), web.get("/buckets/{b}/keys/{k}", missing)])
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/boom")).status == 500
        assert (await client.get("/buckets/b/keys/k")).status == 404
        assert (await client.get("/nowhere")).status == 404
    snap = stats.snapshot()
    assert stats.backlog == 0
    assert snap["http_5xx_total"] == 1
    assert snap["http_4xx_total"] == 2
    assert snap["node_gets_total"] == 1  # the 404 of an object route


# ------------------------------------------------------------------ preflist


async def test_preflist_lists_the_primaries_of_a_key(cluster, http):
    body = await _json(http, cluster.url("n2") + "/buckets/b/keys/k/preflist")
    expected = [
        {"partition": p, "node": node, "primary": True}
        for p, node in cluster.replicas(b"default", b"b", b"k")
    ]
    assert body == {"preflist": expected}
    typed = await _json(http, cluster.url("n4") + "/types/siblings/buckets/b/keys/k/preflist")
    assert typed["preflist"] == [
        {"partition": p, "node": node, "primary": True}
        for p, node in cluster.replicas(b"siblings", b"b", b"k")
    ]
    async with http.get(cluster.url("n1") + "/types/nosuch/buckets/b/keys/k/preflist") as r:
        assert r.status == 404
        assert "nosuch" in await r.text()


async def test_preflist_decodes_names_as_the_object_resource_does(cluster, http):
    """'+' is a space and %-escapes are decoded, as in Riak: the answer names the replicas
    of the object that /buckets/my%20b/keys/a+key stores."""
    base = cluster.url("n3")
    body = await _json(http, base + "/buckets/my%20b/keys/a+key%C3%A9/preflist")
    assert [(e["partition"], e["node"]) for e in body["preflist"]] == cluster.replicas(
        b"default", b"my b", "a keyé".encode()
    )
    async with http.get(base + "/buckets/b/keys/%FF/preflist") as r:
        assert r.status == 400
        assert "not UTF-8" in await r.text()


async def test_preflist_shows_a_fallback_when_a_primary_is_down(cluster, http):
    primaries = cluster.replicas(b"default", b"b", b"key-1")
    down = primaries[0][1]
    asker = next(name for name in cluster.nodes if name != down)
    await cluster.stop(down)

    async def preflist_without_down():
        body = await _json(http, cluster.url(asker) + "/buckets/b/keys/key-1/preflist")
        assert all(entry["node"] != down for entry in body["preflist"]), body
        return body["preflist"]

    entries = await eventually(preflist_without_down, what=f"a preflist that leaves out {down}")
    assert len(entries) == 3
    assert sorted(e["partition"] for e in entries) == sorted(p for p, _ in primaries)
    fallback = [e for e in entries if not e["primary"]]
    assert len(fallback) == 1 and fallback[0]["partition"] == primaries[0][0]


# ------------------------------------------------------------------ /openapi.json


async def test_openapi_document_is_valid_and_matches_the_registered_routes(cluster, http):
    doc = await _json(http, cluster.url("n1") + "/openapi.json")
    validate(doc)
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    app = cluster.nodes["n1"].http_app()
    routed = {
        (route.method, resource.canonical)
        for resource in app.router.resources()
        for route in resource
        if route.method != "HEAD"  # aiohttp adds HEAD beside every GET
    }
    assert sorted(routed - documented) == [], "routes missing from /openapi.json"
    assert sorted(documented - routed) == [], "documented in /openapi.json but not routed"
