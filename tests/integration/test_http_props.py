"""Bucket props and bucket types over HTTP, on five in-process nodes gossiping the metadata."""

from __future__ import annotations

import re

from spinekv import buckets
from spinekv.storage.keys import object_key
from tests.inproc import make_node
from tests.support import eventually


async def get_json(http, url: str):
    async with http.get(url) as r:
        return r.status, await r.json()


def digests(cluster) -> set[str]:
    return {node.membership.buckets.digest for node in cluster.nodes.values()}


def put_props(http, url: str, props: dict):
    return http.put(url, json={"props": props})


async def test_allow_mult_set_on_one_node_reaches_every_node_and_makes_siblings(cluster, http):
    status, body = await get_json(http, cluster.url("n1") + "/buckets/b/props")
    assert status == 200
    props = body["props"]
    assert props["name"] == "b" and "bucket_type" not in props
    assert props["allow_mult"] is False and props["n_val"] == 3 and props["r"] == "quorum"
    assert props["linkfun"] == {"mod": "riak_kv_wm_link_walker", "fun": "mapreduce_linkfun"}

    async with put_props(http, cluster.url("n1") + "/buckets/b/props", {"allow_mult": True}) as r:
        assert r.status == 204

    async def seen_on_n5():
        _, body = await get_json(http, cluster.url("n5") + "/buckets/b/props")
        return body["props"]["allow_mult"]

    await eventually(seen_on_n5, what="allow_mult=true to reach n5 by gossip")
    await eventually(
        lambda: len(digests(cluster)) == 1, what="every node to hold the same metadata"
    )
    # Two blind writes through different nodes: siblings, whichever node answers.
    for name, value in (("n2", b"left"), ("n3", b"right")):
        async with http.put(cluster.url(name) + "/buckets/b/keys/k", data=value) as r:
            assert r.status == 204
    for name in ("n1", "n4"):
        async with http.get(cluster.url(name) + "/buckets/b/keys/k?r=all") as r:
            assert r.status == 300
            assert len(re.findall(r"^[a-z0-9]+$", await r.text(), re.M)) == 2


async def test_bad_props_are_refused_with_reasons_and_change_nothing(cluster, http):
    base = cluster.url("n1")
    before = digests(cluster)
    _, shown = await get_json(http, base + "/buckets/b/props")
    refusals = [
        ("PUT", "/buckets/b/props", {"props": {"n_val": 0}}, 400, {"n_val"}),
        (
            "PUT",
            "/buckets/b/props",
            {"props": {"r": "most", "allow_mult": "x"}},
            400,
            {"r", "allow_mult"},
        ),
        ("PUT", "/buckets/b/props", {"props": {"w": 7}}, 400, {"w"}),
        ("PUT", "/buckets/b/props", {"props": {"colour": "red"}}, 400, {"colour"}),
        ("PUT", "/buckets/b/props", {"props": {"name": "c"}}, 400, {"name"}),
        ("PUT", "/buckets/b/props", {"props": {"datatype": "map"}}, 400, {"datatype"}),
        ("PUT", "/buckets/b/props", {"n_val": 2}, 400, None),  # not wrapped in "props"
        ("PUT", "/types/default/props", {"props": {"n_val": 2}}, 400, None),
        ("PUT", "/types/nope/props", {"props": {"n_val": 2}}, 404, None),
        ("PUT", "/types/nope/buckets/b/props", {"props": {"n_val": 2}}, 404, None),
        ("GET", "/types/nope/buckets/b/props", None, 404, None),
        ("GET", "/types/nope/props", None, 404, None),
        ("DELETE", "/types/nope/buckets/b/props", None, 404, None),
    ]
    for method, path, body, status, bad in refusals:
        async with http.request(method, base + path, json=body) as r:
            assert r.status == status, (method, path, await r.text())
            answer = await r.json()
            assert answer["error"], path
            if bad is not None:
                assert set(answer["errors"]) == bad, path
    async with http.put(
        base + "/buckets/b/props", data=b"{not json", headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400 and "must be a JSON object" in (await r.json())["error"]
    async with http.put(base + "/buckets/b/props", data=b'{"props":{"n_val":2}}') as r:
        assert r.status == 415  # Riak takes application/json only
    assert digests(cluster) == before
    assert await get_json(http, base + "/buckets/b/props") == (200, shown)


async def test_type_props_and_bucket_reset(cluster, http):
    base = cluster.url("n2")
    async with put_props(http, base + "/types/siblings/props", {"n_val": 2}) as r:
        assert r.status == 204
    _, body = await get_json(http, base + "/types/siblings/props")
    assert body["props"]["n_val"] == 2 and body["props"]["active"] is True
    async with put_props(http, base + "/types/siblings/buckets/x/props", {"r": 1}) as r:
        assert r.status == 204
    _, body = await get_json(http, base + "/types/siblings/buckets/x/props")
    props = body["props"]
    assert (props["r"], props["n_val"], props["bucket_type"], props["name"]) == (
        1,
        2,
        "siblings",
        "x",
    )
    # A GET's body, sent back as it is, is a valid PUT.
    async with put_props(http, base + "/types/siblings/buckets/x/props", props) as r:
        assert r.status == 204
    async with http.delete(base + "/types/siblings/buckets/x/props") as r:
        assert r.status == 204
    _, body = await get_json(http, base + "/types/siblings/buckets/x/props")
    assert body["props"]["r"] == "quorum" and body["props"]["n_val"] == 2  # the type's again


async def test_bucket_type_is_usable_only_once_active_and_writes_land_on_its_n_val(cluster, http):
    admin = cluster.url("n1") + "/admin/bucket-types"
    async with http.post(admin + "/t", json={"props": {"n_val": 2}}) as r:
        assert r.status == 201
        assert (await r.json())["status"] in ("created", "ready")
    # Created, not active: unknown to the data path on every node.
    assert all(node.props_of("t", "x") is None for node in cluster.nodes.values())
    status, _ = await get_json(http, cluster.url("n3") + "/types/t/buckets/x/props")
    assert status == 404

    async def ready():
        return (await get_json(http, admin + "/t"))[1]["status"] == "ready"

    await eventually(ready, what="every member to see type t")
    async with http.post(admin + "/t/activate") as r:
        assert r.status == 200 and (await r.json())["status"] == "active"
    await eventually(
        lambda: cluster.nodes["n2"].props_of("t", "x") is not None, what="type t to reach n2"
    )
    async with http.put(cluster.url("n2") + "/types/t/buckets/x/keys/k", data=b"v") as r:
        assert r.status == 204
    okey = object_key(b"t", b"x", b"k")
    holders = [
        (name, p) for name, b in cluster.backends.items() for p in b.partitions() if b.get(p, okey)
    ]
    assert len(holders) == 2, holders
    _, listing = await get_json(http, admin)
    assert [(t["name"], t["active"]) for t in listing["types"]] == [
        ("default", True),
        ("records", True),
        ("siblings", True),
        ("t", True),
    ]
    async with http.post(admin + "/t", json={"props": {}}) as r:
        assert r.status == 409 and "already active" in (await r.json())["error"]


async def test_a_type_cannot_be_activated_while_a_member_has_not_seen_it(cluster, http):
    await cluster.stop("n5")
    admin = cluster.url("n1") + "/admin/bucket-types"
    async with http.post(admin + "/late", json={"props": {}}) as r:
        assert r.status == 201

    async def waiting_only_for_n5():
        body = (await get_json(http, admin + "/late"))[1]
        return body["status"] == "created" and body["unacknowledged"] == ["n5"]

    await eventually(waiting_only_for_n5, what="all but n5 to see type late")
    async with http.post(admin + "/late/activate") as r:
        assert r.status == 409 and "not yet seen by n5" in (await r.json())["error"]
    assert cluster.nodes["n1"].props_of("late", "b") is None
    await cluster.restart("n5")

    async def ready():
        return (await get_json(http, admin + "/late"))[1]["status"] == "ready"

    await eventually(ready, what="n5 to see type late once back")
    async with http.post(admin + "/late/activate") as r:
        assert r.status == 200


async def test_props_are_kept_across_a_restart(cluster, http):
    async with put_props(http, cluster.url("n1") + "/buckets/b/props", {"n_val": 5}) as r:
        assert r.status == 204
    await eventually(
        lambda: cluster.nodes["n3"].props_of("default", "b").n_val == 5, what="n_val=5 to reach n3"
    )
    await cluster.stop("n3")
    # What a restarted n3 knows before it has talked to anyone: its own stored metadata.
    fresh = make_node(cluster.config, cluster.config.node("n3"), cluster.backends["n3"])
    assert fresh.props_of("default", "b").n_val == 5
    await cluster.restart("n3")


async def test_concurrent_changes_on_two_nodes_converge_to_one_answer(cluster, http):
    config = cluster.config
    m1, m2 = cluster.nodes["n1"].membership, cluster.nodes["n2"].membership
    now = 1_000_000  # the same stamp on both: the node name decides, the same way everywhere
    # Neither has seen the other's change when it makes its own.
    for membership, me, n_val, own in ((m1, "n1", 2, "only1"), (m2, "n2", 4, "only2")):
        meta = buckets.set_bucket_props(
            config, membership.buckets, "default", "c", {"n_val": n_val}, now, me
        )
        meta = buckets.set_bucket_props(config, meta, "default", own, {"allow_mult": True}, now, me)
        membership.update_buckets(meta)
    await eventually(lambda: len(digests(cluster)) == 1, what="the metadata to converge")
    for node in cluster.nodes.values():
        assert node.props_of("default", "c").n_val == 4  # (stamp, "n2") > (stamp, "n1")
        assert node.props_of("default", "only1").allow_mult is True
        assert node.props_of("default", "only2").allow_mult is True
