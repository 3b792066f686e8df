"""SIGSTOP a node for longer than failure detection, keep writing, SIGCONT it: it catches up.

The story, step by step:
1. five nodes serve; n3 is paused with SIGSTOP: its connections stay open, nothing answers;
2. within the detection window every other node marks it down;
3. w=3 writes and r=2 reads go on through fallbacks while it is paused;
4. SIGCONT: n3 is seen up again and hinted handoff brings its writes home (pr=3 reads).
"""

from __future__ import annotations

import os
import signal


def test_sigstop_longer_than_detection_then_resume(cluster):
    victim = "n3"
    others = [n for n in cluster.config.node_names() if n != victim]
    pid = cluster.pid(victim)
    os.kill(pid, signal.SIGSTOP)
    try:
        cluster.wait_seen(victim, up=False, timeout=15)
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
    cluster.wait_seen(victim, up=True)
    cluster.wait_handoff_done()
    for key, value in acknowledged.items():
        r = cluster.request("GET", others[0], f"/buckets/pause/keys/{key}?pr=3")
        assert (r.status, r.body) == (200, value), key
