"""Bucket types and bucket props on real node processes over LevelDB, driven as a user would:
`spinekv admin bucket-type ...` and curl-like HTTP requests.

The story:
1. create type t with n_val=2: not usable yet; once every member has seen it, status says it
   may be activated; activate it; list and status show it active with its props.
2. a write to a bucket of t lands on exactly 2 replicas; an update of t is refused for a
   bad value and applied for a good one.
3. allow_mult=true set on default-type bucket b through n1: blind writes through n2 and n3
   become siblings, seen from n4.
4. every node is stopped and n1 started alone: it still knows b's props and type t.
"""

from __future__ import annotations

import json

from tests.support import eventually_sync

JSON = {"Content-Type": "application/json"}


def test_bucket_type_lifecycle_props_and_restart(cluster):
    def admin(*args: str):
        return cluster.cli("admin", "bucket-type", *args)

    created = admin("create", "t", '{"props":{"n_val":2}}')
    assert created.returncode == 0, created.stdout + created.stderr
    assert created.stdout.strip() == "t created"
    assert cluster.request("GET", "n3", "/types/t/buckets/x/props").status == 404
    eventually_sync(
        lambda: "t has been created and may be activated" in admin("status", "t").stdout,
        what="every member to see type t",
    )
    activated = admin("activate", "t")
    assert activated.returncode == 0 and activated.stdout.strip() == "t has been activated"
    listing = admin("list").stdout.splitlines()
    assert listing == [
        "default (active)",
        "records (active)",
        "siblings (active)",
        "t (active)",
    ]
    status = admin("status", "t").stdout.splitlines()
    assert status[0] == "t is active" and "n_val: 2" in status and "allow_mult: true" in status

    # 2. A write in t lands on n_val=2 replicas: the third of the key's preference list has none.
    eventually_sync(
        lambda: cluster.request("GET", "n2", "/types/t/buckets/x/props").status == 200,
        what="type t to be active on n2",
    )
    assert cluster.request("PUT", "n2", "/types/t/buckets/x/keys/k", b"v").status == 204
    path = "/admin/replicas/types/t/buckets/x/keys/k?n_val=3"
    replicas = cluster.request("GET", "n1", path).json()["replicas"]
    assert [r["status"] for r in replicas] == ["found", "found", "notfound"]
    refused = admin("update", "t", '{"props":{"n_val":"two"}}')
    assert refused.returncode == 1
    assert refused.stdout.splitlines() == [
        "Error updating bucket type t:",
        "n_val must be a positive integer (at most 4294967295)",
    ]
    updated = admin("update", "t", '{"props":{"notfound_ok":false}}')
    assert updated.returncode == 0 and updated.stdout.strip() == "t updated"
    bad_json = admin("create", "u", "{nope")
    assert (
        bad_json.returncode == 1 and "Cannot create bucket type u: invalid json" in bad_json.stderr
    )

    # 3. allow_mult on a default-type bucket, set through one node, makes siblings anywhere.
    body = json.dumps({"props": {"allow_mult": True}}).encode()
    assert cluster.request("PUT", "n1", "/buckets/b/props", body, JSON).status == 204
    for name in ("n2", "n3"):
        eventually_sync(
            lambda name=name: cluster.request("GET", name, "/buckets/b/props").json()["props"][
                "allow_mult"
            ],
            what=f"allow_mult=true to reach {name}",
        )
    for name, value in (("n2", b"left"), ("n3", b"right")):
        assert cluster.request("PUT", name, "/buckets/b/keys/k", value).status == 204
    assert cluster.request("GET", "n4", "/buckets/b/keys/k?r=all").status == 300

    # 4. Kept on disk: n1 alone, having talked to no one since it started, still knows it all.
    eventually_sync(lambda: "t is active" in admin("status", "t").stdout, what="t active on n1")
    everyone = cluster.config.node_names()
    assert cluster.cli("down", *everyone).returncode == 0
    cluster.up("n1")
    props = cluster.request("GET", "n1", "/buckets/b/props").json()["props"]
    assert props["allow_mult"] is True
    alone = cluster.cli("admin", "--node", "n1", "bucket-type", "status", "t").stdout
    assert alone.splitlines()[0] == "t is active" and "notfound_ok: false" in alone.splitlines()
