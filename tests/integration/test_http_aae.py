"""GET /admin/aae on in-process nodes: primaries of one preference list hold equal trees."""

from __future__ import annotations

from tests.support import eventually


async def trees_of(http, url: str) -> dict[tuple[int, int], dict]:
    async with http.get(f"{url}/admin/aae") as r:
        assert r.status == 200
        body = await r.json()
    assert body["enabled"] and body["segments"] == 2**16
    return {(t["partition"], t["n_val"]): t for t in body["trees"]}


async def test_primaries_of_a_preference_list_report_the_same_root(cluster, http):
    for i in range(60):
        url = f"{cluster.url(f'n{i % 5 + 1}')}/buckets/b/keys/k{i}?w=all&dw=all"
        async with http.put(url, data=b"v%d" % i) as r:
            assert r.status == 204
    replicas = cluster.replicas(b"default", b"b", b"k7")
    partition = replicas[0][0]
    holders = [node for _, node in replicas]
    others = [name for name in cluster.nodes if name not in holders]

    async def same_built_roots():
        seen = [(await trees_of(http, cluster.url(name)))[(partition, 3)] for name in holders]
        assert {t["state"] for t in seen} == {"built"}
        assert len({t["root"] for t in seen}) == 1 and seen[0]["root"] != "00000000"
        assert len({t["keys"] for t in seen}) == 1 and seen[0]["keys"] >= 1
        return seen

    seen = await eventually(same_built_roots, what="equal trees on every primary")
    # Each primary's tree comes from the vnode it owns in that list.
    assert sorted(t["source"] for t in seen) == sorted(p for p, _ in replicas)
    for name in others:  # a node outside the list keeps no tree of it
        assert (partition, 3) not in await trees_of(http, cluster.url(name))

    # A clean restart brings the trees back from disk, root for root.
    before = (await trees_of(http, cluster.url(holders[0])))[(partition, 3)]
    await cluster.stop(holders[0])
    await cluster.restart(holders[0])
    after = (await trees_of(http, cluster.url(holders[0])))[(partition, 3)]
    assert after["state"] == "loaded"
    assert (after["root"], after["keys"]) == (before["root"], before["keys"])
