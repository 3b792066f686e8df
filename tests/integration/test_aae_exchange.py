"""AAE exchanges on in-process nodes: lost replicas come back with no client reads."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner

from spinekv.aae_exchange import IN_SYNC, REPAIR
from spinekv.cli import common, main
from spinekv.object import contents
from spinekv.storage.keys import object_key, split_object_key
from tests.inproc import inproc_cluster
from tests.support import eventually

KEYS = [b"k%d" % i for i in range(80)]


@pytest.fixture
async def cluster(tmp_path):
    async with inproc_cluster(tmp_path, extra="[aae]\ntick_ms = 200\n") as c:
        yield c


async def write_all(cluster, http) -> None:
    for i, key in enumerate(KEYS):
        url = f"{cluster.url(f'n{i % 5 + 1}')}/buckets/b/keys/{key.decode()}?w=all&dw=all"
        async with http.put(url, data=b"v" + key) as r:
            assert r.status == 204
    await asyncio.gather(*(n.aae.settled() for n in cluster.nodes.values()))


def held_by(cluster, name: str) -> list[tuple[int, bytes]]:
    """(partition, object key) of every written key `name` holds a primary replica of."""
    return [
        (partition, object_key(b"default", b"b", key))
        for key in KEYS
        for partition, node in cluster.replicas(b"default", b"b", key)
        if node == name
    ]


async def test_replicas_lost_from_one_node_return_without_client_reads(cluster, http):
    await write_all(cluster, http)
    victim = cluster.nodes["n2"]
    lost = held_by(cluster, "n2")
    assert len(lost) >= 20
    for partition, okey in lost:
        cluster.backends["n2"].delete(partition, okey)
    # The disk lost them behind the tree's back; the next rebuild (weekly, or after a
    # crash) finds the tree no longer matches its peers'.
    for source in {p for p, _ in lost}:
        await victim.aae.rebuild(source)

    def all_back() -> bool:
        missing = [okey for p, okey in lost if cluster.backends["n2"].get(p, okey) is None]
        assert not missing, f"{len(missing)} of {len(lost)} still missing on n2"
        return True

    await eventually(all_back, what="every lost replica back on n2", timeout=30)

    def counted() -> bool:  # each lost key was read-repaired by an exchange (n2's or a peer's)
        assert sum(node.exchanges.repaired for node in cluster.nodes.values()) >= len(lost)
        return True

    await eventually(counted, what="the exchanges to count their repairs")
    await shows_the_repairs(cluster, http, len(lost))


async def aae_rows(cluster, http) -> dict[str, list[dict]]:
    rows = {}
    for name in cluster.nodes:
        async with http.get(f"{cluster.url(name)}/admin/aae") as r:
            assert r.status == 200
            rows[name] = (await r.json())["trees"]
    return rows


async def shows_the_repairs(cluster, http, lost: int) -> None:
    """GET /admin/aae shows the repairing exchanges, and their repairs age out after an hour."""
    rows = await aae_rows(cluster, http)
    repairing = [
        t["last_exchange"]
        for trees in rows.values()
        for t in trees
        if t["last_exchange"] and t["last_exchange"]["outcome"] == REPAIR
    ]
    assert repairing and all(e["repaired"] >= 1 and e["peer"] in cluster.nodes for e in repairing)
    assert sum(t["repairs_last_hour"] for trees in rows.values() for t in trees) >= lost
    stats = []
    for name in cluster.nodes:
        async with http.get(f"{cluster.url(name)}/stats") as r:
            stats.append(await r.json())
    assert sum(s["aae_keys_repaired"] for s in stats) >= lost
    assert sum(s["aae_exchanges_repaired"] for s in stats) >= len(repairing)
    an_hour_on = time.time() + 3601
    for node in cluster.nodes.values():
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(node.clock, "time", lambda: an_hour_on)
            assert {node.exchanges.repairs_last_hour(tid) for tid in node.aae.slots} == {0}


async def test_an_in_sync_cluster_repairs_nothing(cluster, http):
    await write_all(cluster, http)
    node = cluster.nodes["n1"]
    results = [await node.exchanges.exchange(tid) for tid in sorted(node.aae.slots)]
    assert results and all(r is not None for r in results)
    assert {(r.outcome, r.repaired) for r in results} == {(IN_SYNC, 0)}
    assert node.exchanges.outcomes[IN_SYNC] >= len(results)
    for other in cluster.nodes.values():
        other.exchanges.last.clear()

    def every_tree_exchanged() -> bool:  # by the background driver, on every node
        for other in cluster.nodes.values():
            assert set(other.exchanges.last) == set(other.aae.slots), other.name
        return True

    await eventually(every_tree_exchanged, what="a background exchange of every tree")
    outcomes = {
        (last.outcome, last.repaired)
        for other in cluster.nodes.values()
        for last in other.exchanges.last.values()
    }
    assert outcomes == {(IN_SYNC, 0)}
    await aae_status_shows_every_tree(cluster)


def run_cli(cluster, *args: str):
    argv = ["--config", str(cluster.config.path), "admin", "aae-status", *args]
    return CliRunner().invoke(main, argv)


async def aae_status_shows_every_tree(cluster) -> None:
    """`spinekv admin aae-status`: a row per node and tree, each in sync; a node that is
    down is a row saying so, and --node asks one node."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(common.console, "width", 200)  # a row per line, whatever the terminal
        shown = await asyncio.to_thread(run_cli, cluster)
    assert shown.exit_code == 0, shown.output
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in shown.output.splitlines()
        if line.startswith("│")
    ]
    for name, node in cluster.nodes.items():
        mine = [row for row in rows if row[0] == name]
        assert sorted((int(r[1]), int(r[2])) for r in mine) == sorted(node.aae.slots)
        assert {r[3] for r in mine} == {"built"}
        assert all(r[5].endswith(": in sync") and r[6] == "0" for r in mine), mine

    await cluster.stop("n5")
    answers = json.loads((await asyncio.to_thread(run_cli, cluster, "--json")).output)
    assert set(answers) == set(cluster.nodes) | {"n5"}
    assert "did not answer" in answers["n5"]["error"]
    assert all(answers[name]["trees"] for name in cluster.nodes)
    one = json.loads((await asyncio.to_thread(run_cli, cluster, "--node", "n2", "--json")).output)
    assert list(one) == ["n2"]


async def test_exchanges_wait_while_the_request_backlog_is_long(tmp_path, http):
    # A one-second tick: an exchange may wait ten seconds for the backlog to shrink.
    async with inproc_cluster(tmp_path, extra="[aae]\ntick_ms = 1000\n") as slow:
        await write_all(slow, http)
        for node in slow.nodes.values():  # as if 1,000 client requests were waiting on each
            node.stats.backlog += 1000
        lost = held_by(slow, "n2")
        for partition, okey in lost:
            slow.backends["n2"].delete(partition, okey)
        for source in {p for p, _ in lost}:
            await slow.nodes["n2"].aae.rebuild(source)
        before = {name: node.exchanges.repaired for name, node in slow.nodes.items()}
        await asyncio.sleep(3)  # three ticks in which every exchange found the backlog long
        assert {name: node.exchanges.repaired for name, node in slow.nodes.items()} == before
        assert all(slow.backends["n2"].get(p, okey) is None for p, okey in lost)

        for node in slow.nodes.values():
            node.stats.backlog -= 1000

        def all_back() -> bool:
            missing = [okey for p, okey in lost if slow.backends["n2"].get(p, okey) is None]
            assert not missing, f"{len(missing)} of {len(lost)} still missing on n2"
            return True

        await eventually(all_back, what="every lost replica back once the backlog went", timeout=30)


async def test_replicas_rotten_on_disk_are_overwritten_without_client_reads(cluster, http):
    await write_all(cluster, http)
    victim = cluster.nodes["n3"]
    rotten = held_by(cluster, "n3")[:10]
    backend = cluster.backends["n3"]
    for partition, okey in rotten:
        backend.put(partition, okey, b"\xc1 not an object")  # 0xc1 is never valid msgpack
    for source in {p for p, _ in rotten}:
        await victim.aae.rebuild(source)  # the rebuild leaves unreadable copies out

    def all_readable() -> bool:
        still = [okey for p, okey in rotten if victim.vnodes.get(p, okey) is None]
        assert not still, f"{len(still)} of {len(rotten)} still unreadable on n3"
        return True

    await eventually(all_readable, what="every rotten replica rewritten on n3", timeout=30)
    for partition, okey in rotten:
        key = split_object_key(okey)[2]
        assert [c.value for c in contents(victim.vnodes.get(partition, okey))] == [b"v" + key]
    assert victim.vnodes.unreadable >= len(rotten)


async def test_an_exchange_stopped_at_max_repairs_is_followed_by_another_pass(tmp_path, http):
    # The tick never comes: only the passes this test runs exchange anything.
    extra = "[aae]\ntick_ms = 86400000\nmax_repairs = 2\n"
    async with inproc_cluster(tmp_path, extra=extra) as slow:
        await write_all(slow, http)
        victim = slow.nodes["n2"]
        by_partition: dict[int, list[bytes]] = {}
        for partition, okey in held_by(slow, "n2"):
            by_partition.setdefault(partition, []).append(okey)
        partition, lost = max(by_partition.items(), key=lambda item: len(item[1]))
        assert len(lost) >= 5
        for okey in lost:
            slow.backends["n2"].delete(partition, okey)
        await victim.aae.rebuild(partition)

        passes = [await victim.exchanges.exchange_all()]
        while passes[-1]:
            assert len(passes) < len(lost), "passes went on after every key was repaired"
            passes.append(await victim.exchanges.exchange_all())
        # Two keys a pass: at least three passes, each but the last asking for another.
        assert len(passes) >= 3 and passes[0] is True
        missing = [okey for okey in lost if slow.backends["n2"].get(partition, okey) is None]
        assert not missing, (
            f"{len(missing)} of {len(lost)} still missing after {len(passes)} passes"
        )
