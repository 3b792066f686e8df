"""kill -9 a node, keep writing at w=3, restart it: hinted handoff brings every write home.

The story, step by step:
1. five nodes serve; n2 is killed with SIGKILL;
2. writes go on at w=3 through the other nodes (fallbacks stand in for n2);
3. n2 restarts from its LevelDB; the fallbacks hand their data back to it;
4. every acknowledged write reads back at pr=3 (all three primaries, n2 among them),
   and no node still holds data for a partition it does not own.
"""

from __future__ import annotations


def test_kill9_write_w3_restart_and_read_pr3(cluster):
    victim = "n2"
    others = [n for n in cluster.config.node_names() if n != victim]
    cluster.kill9(victim)
    cluster.wait_seen(victim, up=False)
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
    cluster.wait_handoff_done()
    for key, value in acknowledged.items():
        r = cluster.request("GET", others[0], f"/buckets/story/keys/{key}?pr=3")
        assert (r.status, r.body) == (200, value), key
