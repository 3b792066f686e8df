"""kill -9 a node, keep writing at w=3, restart it: hinted handoff brings every write home.

The story, step by step:
1. five nodes serve; n2 is killed with SIGKILL;
2. writes go on at w=3 through the other nodes (fallbacks stand in for n2);
3. n2 restarts from its LevelDB; the fallbacks hand their data back to it;
4. every acknowledged write reads back at pr=3 (all three primaries, n2 among them),
   and no node still holds data for a partition it does not own.
"""

from __future__ import annotations

import os
import signal

from tests.support import eventually_sync

from .conftest import ProcessCluster


def wait_seen(cluster: ProcessCluster, victim: str, up: bool, timeout: float = 20) -> None:
    """Poll until every other node reports `victim` as up (or down)."""
    others = [n for n in cluster.config.node_names() if n != victim]
    eventually_sync(
        lambda: all(
            cluster.request("GET", n, "/admin/status").json()["members"][victim]["up"] == up
            for n in others
        ),
        what=f"{victim} to be seen {'up' if up else 'down'}",
        timeout=timeout,
    )


def wait_handoff_done(cluster: ProcessCluster) -> None:
    """Poll until no node holds data for a partition it does not own."""
    eventually_sync(
        lambda: all(
            not cluster.request("GET", n, "/admin/status").json()["handoff"]["pending"]
            for n in cluster.config.node_names()
        ),
        what="hinted handoff to finish",
        timeout=60,
    )


def test_kill9_write_w3_restart_and_read_pr3(cluster):
    victim = "n2"
    others = [n for n in cluster.config.node_names() if n != victim]
    cluster.kill9(victim)
    wait_seen(cluster, victim, up=False)
    acknowledged = {}
    for i in range(120):
        key, value = f"k{i}", b"value-%d" % i
        r = cluster.request("PUT", others[i % 4], f"/buckets/story/keys/{key}?w=3", value)
        if r.status == 204:
            acknowledged[key] = value
    assert len(acknowledged) == 120, "with fallbacks every w=3 write should be acknowledged"
    held = sum(
        len(cluster.request("GET", n, "/admin/status").json()["handoff"]["pending"]) for n in others
    )
    assert held > 0, "fallbacks should hold the dead node's partitions"

    cluster.up(victim)
    wait_handoff_done(cluster)
    for key, value in acknowledged.items():
        r = cluster.request("GET", others[0], f"/buckets/story/keys/{key}?pr=3")
        assert (r.status, r.body) == (200, value), key


def test_sigstop_longer_than_detection_then_resume(cluster):
    """A paused node (SIGSTOP) is detected as down; writes go on; on SIGCONT it catches up.

    1. n3 is paused; its connections stay open but nothing answers;
    2. within the detection window every other node marks it down;
    3. w=3 writes and r=2 reads go on through fallbacks while it is paused;
    4. SIGCONT: n3 is seen up again and hinted handoff brings its writes home (pr=3 reads).
    """
    victim = "n3"
    others = [n for n in cluster.config.node_names() if n != victim]
    pid = cluster.pid(victim)
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_seen(cluster, victim, up=False, timeout=15)
        acknowledged = {}
        for i in range(60):
            key, value = f"p{i}", b"paused-%d" % i
            r = cluster.request("PUT", others[i % 4], f"/buckets/pause/keys/{key}?w=3", value)
            assert r.status == 204, r.body
            acknowledged[key] = value
        for key, value in acknowledged.items():
            r = cluster.request("GET", others[1], f"/buckets/pause/keys/{key}?r=2")
            assert (r.status, r.body) == (200, value)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_seen(cluster, victim, up=True)
    wait_handoff_done(cluster)
    for key, value in acknowledged.items():
        r = cluster.request("GET", others[0], f"/buckets/pause/keys/{key}?pr=3")
        assert (r.status, r.body) == (200, value), key
