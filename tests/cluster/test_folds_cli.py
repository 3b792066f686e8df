"""Operator folds from the command line on real node processes over LevelDB.

The story:
1. 20 keys are written to default/people and two of them deleted; a 30 kB value goes to
   default/big; three blind writes through three nodes make siblings on siblings/s/dup.
2. `admin fold object-stats` counts every object once, with the tombstones and the sibling
   histogram, as JSON and as a table.
3. `admin fold find-keys` finds the key with siblings and the large one.
4. `admin fold erase` without --yes asks, and erases nothing when the answer is no; with
   --yes it tombstones the matching keys, and the listing no longer shows them.
5. `admin aae-status` shows every node's trees and their states.
"""

from __future__ import annotations

import json

from tests.support import eventually_sync


def test_object_stats_find_keys_and_erase_from_the_cli(cluster):
    def put(node: str, path: str, body: bytes) -> None:
        status = cluster.request("PUT", node, path, body, {"Content-Type": "text/plain"}).status
        assert status == 204, path

    def fold(*args: str):
        result = cluster.cli("admin", "fold", *args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    # Kept: the tombstones counted below must not race the reaper (delete_mode's default
    # reaps them 3 s after the delete).
    props = json.dumps({"props": {"delete_mode": "keep"}}).encode()
    headers = {"Content-Type": "application/json"}
    assert cluster.request("PUT", "n1", "/buckets/people/props", props, headers).status == 204
    eventually_sync(
        lambda: all(
            cluster.request("GET", n, "/buckets/people/props").json()["props"]["delete_mode"]
            == "keep"
            for n in cluster.config.node_names()
        ),
        what="delete_mode keep on every node",
    )
    for i in range(20):
        put(f"n{i % 5 + 1}", f"/buckets/people/keys/p{i:02d}", b"v")
    for key in ("p01", "p02"):
        assert cluster.request("DELETE", "n3", f"/buckets/people/keys/{key}").status == 204
    put("n1", "/buckets/big/keys/large", b"x" * 30_000)
    for node in ("n1", "n2", "n3"):
        put(node, "/types/siblings/buckets/s/keys/dup", node.encode())

    # 2. Stats: each object once, whichever node answers for which partition.
    people = json.loads(fold("object-stats", "--bucket", "people", "--json"))
    assert (people["count"], people["tombstones"], people["siblings"]) == (20, 2, {"1": 20})
    whole = json.loads(fold("object-stats", "--json"))
    assert (whole["count"], whole["tombstones"]) == (22, 2)
    assert whole["siblings"] == {"1": 21, "3": 1}
    table = fold("object-stats", "--type", "siblings")
    assert "Objects in bucket type siblings" in table
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in table.splitlines()
        if line.startswith("│")
    ]
    assert ["objects", "1"] in rows and ["tombstones", "0"] in rows and ["3", "1"] in rows

    # 3. Keys over a threshold.
    found = fold("find-keys", "--siblings", "1")
    assert "1 keys with more than 1 siblings" in found and "dup" in found
    found = fold("find-keys", "--size", "10000")
    assert "large" in found and "dup" not in found
    refused = cluster.cli("admin", "fold", "find-keys")
    assert refused.returncode == 2 and "exactly one of" in refused.stderr

    # 4. Erase: asked first (no answer on stdin is a no), then with --yes.
    asked = cluster.cli("admin", "fold", "erase", "--bucket", "people", "--prefix", "p1")
    assert asked.returncode == 1 and "Erase 10 keys in bucket default/people" in asked.stdout
    assert json.loads(fold("object-stats", "--bucket", "people", "--json"))["tombstones"] == 2
    done = fold("erase", "--bucket", "people", "--prefix", "p1", "--yes")
    assert "Erased 10 of 10 keys" in done
    keys = cluster.request("GET", "n4", "/buckets/people/keys?keys=true").json()["keys"]
    assert sorted(keys) == [f"p0{i}" for i in range(10) if i not in (1, 2)]
    assert [r["status"] for r in cluster.replicas("n2", "people", "p15")] == ["tombstone"] * 3

    # 5. Every node's trees, as JSON and as a table naming each node and state.
    shown = cluster.cli("admin", "aae-status", "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    answers = json.loads(shown.stdout)
    assert sorted(answers) == [f"n{i}" for i in range(1, 6)]
    assert all(answer["enabled"] and answer["trees"] for answer in answers.values())
    states = {t["state"] for answer in answers.values() for t in answer["trees"]}
    assert states <= {"built", "rebuilding"}
    table = cluster.cli("admin", "aae-status", env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stdout + table.stderr
    rows = [line.split("│")[1:-1] for line in table.stdout.splitlines() if line.startswith("│")]
    trees = sum(len(answer["trees"]) for answer in answers.values())
    assert len(rows) == trees
    assert {row[0].strip() for row in rows} == set(answers)
    assert {row[3].strip() for row in rows} <= {"built", "rebuilding"}
