"""Lost replicas come back with no client reads: anti-entropy exchanges between real nodes.

Two stories, on five nodes exchanging their trees every second ([aae] tick_ms = 1000):
- a node's data folder is deleted while it is stopped; once it is back, every key it held
  returns to three replicas;
- a fallback holding hinted writes for a down primary is killed with SIGKILL and loses its
  data folder, so the hints are gone; once the primary and the fallback are back, every
  key returns to three replicas on its primaries.

No client reads the keys (a read would repair them): each replica is looked at with
GET /admin/replicas, which reads every vnode's local copy and repairs nothing.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from spinekv.claim import claim
from spinekv.ring import preference_list, primaries
from tests.cluster.conftest import running_cluster
from tests.support import eventually_sync, write_cluster_toml

BUCKET = "story"


@pytest.fixture
def aae_cluster(tmp_path, request):
    path = write_cluster_toml(tmp_path, 5, extra="[aae]\ntick_ms = 1000\n")
    with running_cluster(path, request) as c:
        yield c


def put_all(cluster, keys: list[str], query: str, through: list[str]) -> None:
    def put(i_key: tuple[int, str]) -> None:
        i, key = i_key
        r = cluster.request(
            "PUT",
            through[i % len(through)],
            f"/buckets/{BUCKET}/keys/{key}?{query}",
            b"v-" + key.encode(),
        )
        assert r.status == 204, (key, r.status, r.body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, enumerate(keys)))


def primary_copies(cluster, key: str) -> int:
    """How many primaries hold the key, each replica read locally (no read repair)."""
    replicas = cluster.replicas("n1", BUCKET, key)
    return sum(1 for r in replicas if r["primary"] and r.get("status") == "found")


def wait_three_replicas(cluster, keys: list[str], timeout: float) -> float:
    """Poll until every key has three primary replicas; the seconds it took."""
    started = time.monotonic()
    short = set(keys)

    def all_back() -> bool:
        with ThreadPoolExecutor(8) as pool:
            counts = dict(
                zip(short, pool.map(lambda k: primary_copies(cluster, k), short), strict=True)
            )
        short.difference_update(k for k, n in counts.items() if n == 3)
        assert not short, f"{len(short)} of {len(keys)} keys below 3 replicas"
        return True

    eventually_sync(all_back, what="every key back to 3 replicas", timeout=timeout, interval=0.5)
    return time.monotonic() - started


def wipe(cluster, name: str) -> None:
    shutil.rmtree(cluster.config.node_dir(name) / "data")


def test_a_wiped_node_gets_every_key_back_without_reads(aae_cluster):
    cluster = aae_cluster
    victim = "n3"
    keys = [f"w{i}" for i in range(300)]
    put_all(cluster, keys, "w=all&dw=all", ["n1", "n2", "n4", "n5"])
    held = [k for k in keys if any(r["node"] == victim for r in cluster.replicas("n1", BUCKET, k))]
    assert len(held) > 100, "n3 should be a primary of many keys"

    done = cluster.cli("down", victim)
    assert done.returncode == 0, done.stdout + done.stderr
    wipe(cluster, victim)
    cluster.up(victim)
    cluster.wait_seen(victim, up=True)

    took = wait_three_replicas(cluster, keys, timeout=60)
    print(f"wiped n3: every key back to 3 replicas {took:.1f}s after it was seen up")


def fallback_keys(cluster, down: str, fallback: str, count: int) -> list[str]:
    """Keys with `down` among their primaries whose stand-in, while it is down, is `fallback`."""
    config = cluster.config
    ring = claim(config.members(), config.ring_size, config.n_val)
    up = [n for n in config.members() if n != down]
    keys, i = [], 0
    while len(keys) < count:
        key = f"f{i}"
        partition = ring.partition_of(b"default", BUCKET.encode(), key.encode())
        if down in {e.node for e in primaries(ring, partition, config.n_val)}:
            stand_ins = {
                e.node for e in preference_list(ring, partition, config.n_val, up) if not e.primary
            }
            if stand_ins == {fallback}:
                keys.append(key)
        i += 1
    return keys


def test_a_crashed_fallbacks_lost_hints_are_restored_without_reads(aae_cluster):
    cluster = aae_cluster
    down, fallback = "n2", "n4"
    keys = fallback_keys(cluster, down, fallback, 100)
    done = cluster.cli("down", down)
    assert done.returncode == 0, done.stdout + done.stderr
    cluster.wait_seen(down, up=False)
    put_all(cluster, keys, "w=3", ["n1", "n3", "n5"])
    holding = {
        n: bool(cluster.request("GET", n, "/admin/status").json()["handoff"]["pending"])
        for n in ("n1", "n3", "n4", "n5")
    }
    assert holding == {"n1": False, "n3": False, "n4": True, "n5": False}

    cluster.kill9(fallback)
    wipe(cluster, fallback)
    cluster.up(down, fallback)
    cluster.wait_seen(down, up=True)
    cluster.wait_seen(fallback, up=True)

    took = wait_three_replicas(cluster, keys, timeout=60)
    print(f"lost hints: every key back to 3 replicas {took:.1f}s after both were seen up")
