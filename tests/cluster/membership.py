"""What the membership stories share: a writer thread and checks of the settled ring."""

from __future__ import annotations

import threading

from tests.support import eventually_sync

from .conftest import ProcessCluster


class Writer:
    """Writes fresh keys through `via` in a thread; remembers what was acknowledged."""

    def __init__(self, cluster: ProcessCluster, via: list[str], bucket: str) -> None:
        self.cluster = cluster
        self.via = via
        self.bucket = bucket
        self.acked: dict[str, bytes] = {}
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            key, value = f"k{i}", b"value-%d" % i
            node = self.via[i % len(self.via)]
            try:
                r = self.cluster.request("PUT", node, f"/buckets/{self.bucket}/keys/{key}", value)
            except OSError as exc:
                self.failed.append(f"{key} via {node}: {exc}")
            else:
                if r.status == 204:
                    self.acked[key] = value
                else:
                    self.failed.append(f"{key} via {node}: {r.status} {r.body[:200]!r}")
            i += 1

    def wait_for_acks(self, count: int) -> None:
        target = len(self.acked) + count
        eventually_sync(
            lambda: len(self.acked) >= target, what=f"{count} more acknowledged writes", timeout=60
        )


def ring_settled(cluster: ProcessCluster, names: list[str]) -> bool:
    """All `names` agree on the ring, no move is pending and no node holds foreign data."""
    statuses = [cluster.request("GET", n, "/admin/status").json() for n in names]
    ring = cluster.request("GET", names[0], "/admin/ring").json()
    return (
        len({s["ring"]["digest"] for s in statuses}) == 1
        and not ring["pending"]
        and all(m["status"] == "valid" for m in ring["members"])
        and not any(s["handoff"]["pending"] or s["handoff"]["active"] for s in statuses)
    )


def assert_all_primaries_hold(cluster: ProcessCluster, via: str, writer: Writer) -> None:
    members = {m["node"] for m in cluster.request("GET", via, "/admin/ring").json()["members"]}
    for key, value in writer.acked.items():
        replicas = cluster.replicas(via, writer.bucket, key)
        assert [r["primary"] for r in replicas] == [True] * 3, (key, replicas)
        assert {r["node"] for r in replicas} <= members
        assert all(r["status"] == "found" for r in replicas), (key, replicas)
        r = cluster.request("GET", via, f"/buckets/{writer.bucket}/keys/{key}?pr=3")
        assert (r.status, r.body) == (200, value), key
