"""Membership staging refuses what cannot work, with a clear reason, and stages nothing."""

from __future__ import annotations


def test_staging_refusals_are_clear(cluster_with_spare):
    cluster = cluster_with_spare
    refused = cluster.cli("admin", "join", "n6")  # not started yet
    assert refused.returncode != 0 and "not reachable" in refused.stderr, refused.stderr
    refused = cluster.cli("admin", "join", "n1")
    assert refused.returncode != 0 and "already a member" in refused.stderr
    refused = cluster.cli("admin", "plan")
    assert refused.returncode != 0 and "no changes staged" in refused.stderr
    refused = cluster.cli("admin", "leave", "n9")
    assert refused.returncode != 0 and f"not a node in {cluster.config.path}" in refused.stderr
    assert cluster.request("GET", "n1", "/admin/ring").json()["epoch"] == 0
