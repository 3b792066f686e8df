"""The blocking spinekv.Client against real node processes: a killed node, a paused node."""

from __future__ import annotations

import os
import signal

import pytest

from spinekv import Client, Unreachable


def test_sync_client_rides_out_a_killed_node_and_a_paused_one(cluster):
    """A script keeps working while the cluster loses nodes under it.

    1. Through a client that prefers n1, store ten objects (allow_mult type) and
       list them back.
    2. SIGKILL n1: every read and a read-modify-write still succeed through the
       other nodes, and the rewrite leaves one sibling (the context survived).
    3. SIGSTOP n2 and ask through a client that prefers n2: its requests time out
       there and move on to a live node.
    4. Stop every node: the client says no node answered.
    """
    names = cluster.config.node_names()
    with Client.from_config(cluster.path, prefer=cluster.url("n1"), timeout=3.0) as client:
        assert client.nodes == [cluster.url(n) for n in names]
        patients = client.bucket("patients", "siblings")
        for i in range(10):
            patients.store(f"p{i}", f"v{i}", indexes=[("ward_bin", "a" if i < 5 else "b")])
        assert sorted(patients.list_keys()) == sorted(f"p{i}" for i in range(10))
        assert sorted(patients.get_index("ward_bin", "a")) == [f"p{i}" for i in range(5)]

        cluster.kill9("n1")
        for i in range(10):
            assert patients.get(f"p{i}").value == f"v{i}".encode()
        obj = patients.get("p0")
        obj.value = b"updated"
        obj.store()
        again = patients.get("p0")
        assert len(again.siblings) == 1 and again.value == b"updated"

        n2 = cluster.pid("n2")
        os.kill(n2, signal.SIGSTOP)
        try:
            with Client.from_config(cluster.path, prefer=cluster.url("n2"), timeout=1.0) as other:
                assert other.get("patients", "p3", bucket_type="siblings").value == b"v3"
                other.store("patients", "p10", b"v10", bucket_type="siblings")
            assert patients.get("p10").value == b"v10"
        finally:
            os.kill(n2, signal.SIGCONT)

        result = cluster.cli("down", timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        with pytest.raises(Unreachable) as err:
            patients.get("p0")
        assert len(err.value.attempts) == len(names)
