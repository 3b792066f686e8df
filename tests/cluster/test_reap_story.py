"""The reaper on real node processes over LevelDB, from the command line.

The story:
1. Bucket type `kept` has delete_mode keep: 1000 keys are written and deleted, and their
   tombstones stay on every primary.
2. `spinekv admin reap --yes` finds 1000 tombstones and reaps 1000; the object-stats fold
   then finds no object of the type on any primary.
3. 100 more keys are written and deleted, and n3 is stopped. The reap defers every
   tombstone n3 is a primary of ("primary n3 down") and reaps the rest; the deferred ones
   stay.
4. n3 comes back; the next reap reaps every one of them, and nothing is left.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cluster.conftest import running_cluster
from tests.support import write_cluster_toml


@pytest.fixture
def cluster(tmp_path, request):
    extra = '[bucket_types.kept]\ndelete_mode = "keep"\n'
    with running_cluster(write_cluster_toml(tmp_path, 5, extra=extra), request) as c:
        yield c


def test_reap_kept_tombstones_and_defer_those_of_a_down_primary(cluster):
    nodes = cluster.config.node_names()

    def write_and_delete(bucket: str, count: int) -> None:
        def one(i: int) -> None:
            node, path = nodes[i % len(nodes)], f"/types/kept/buckets/{bucket}/keys/k{i:04d}"
            r = cluster.request("PUT", node, path + "?w=3", b"v", {"Content-Type": "text/plain"})
            assert r.status == 204, r.body
            assert cluster.request("DELETE", node, path + "?w=3").status == 204

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(count)))

    def admin(*args: str) -> dict:
        result = cluster.cli("admin", *args, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def stats(*scope: str) -> dict:
        return admin("fold", "object-stats", "--type", "kept", *scope)

    # 1. Deleted with delete_mode keep: the tombstones stay.
    write_and_delete("b", 1000)
    kept = stats("--bucket", "b")
    assert (kept["count"], kept["tombstones"]) == (1000, 1000)

    # 2. Reaped from every primary.
    done = admin("reap", "--type", "kept", "--yes")
    assert (done["found"], done["reaped"], done["deferred"]) == (1000, 1000, 0), done
    assert stats()["count"] == 0

    # 3. With n3 down, its tombstones are deferred and stay.
    write_and_delete("c", 100)
    stopped = cluster.cli("down", "n3", timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    cluster.wait_seen("n3", up=False)
    done = admin("reap", "--type", "kept", "--yes")
    deferred = done["deferred"]
    assert done["found"] == 100 and 0 < deferred < 100, done
    assert done["reaped"] == 100 - deferred
    assert done["deferred_reasons"] == {"primary n3 down": deferred}
    assert stats("--bucket", "c")["tombstones"] == deferred

    # 4. Back up: the next reap reaps them all.
    cluster.up("n3")
    cluster.wait_seen("n3", up=True)
    done = admin("reap", "--type", "kept", "--yes")
    assert (done["found"], done["reaped"], done["deferred"]) == (deferred, deferred, 0), done
    assert stats()["count"] == 0
