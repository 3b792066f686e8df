"""Whole-cluster stories against real node processes, one story per test (riak_test style)."""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil

from spinekv.cli import processes
from spinekv.config import load_config
from spinekv.storage.keys import object_key
from spinekv.storage.leveldb import LevelDBBackend
from tests.support import eventually_sync, write_cluster_toml

from .conftest import ProcessCluster


def test_write_on_one_node_read_from_every_other(cluster):
    """Any node accepts a write; every other node serves it back with its metadata."""
    r = cluster.request(
        "PUT",
        "n1",
        "/buckets/people/keys/9000000009",
        b'{"name":"Ann"}',
        {"Content-Type": "application/json"},
    )
    assert r.status == 204
    for name in ("n2", "n3", "n4", "n5"):
        r = cluster.request("GET", name, "/buckets/people/keys/9000000009")
        assert r.status == 200
        assert r.body == b'{"name":"Ann"}'
        assert r.headers["Content-Type"] == "application/json"
    # Every primary replica holds it on disk.
    replicas = cluster.replicas("n2", "people", "9000000009")
    assert [x["status"] for x in replicas] == ["found"] * 3
    assert len({x["node"] for x in replicas}) == 3


def test_status_shows_pids_and_answers(cluster):
    out = cluster.cli("status").stdout
    for name in cluster.config.node_names():
        assert str(cluster.pid(name)) in out
    assert "5 of 5 nodes serving" in out
    cluster.kill9("n4")
    out = cluster.cli("status").stdout
    assert "4 of 5 nodes serving" in out
    # kill -9 leaves a stale pid file; status ignores it and down tidies it away.
    stale = cluster.config.node_dir("n4") / "node.pid"
    assert stale.exists()
    assert "n4: not running" in cluster.cli("down", "n4").stdout
    assert not stale.exists()


def test_sigkill_a_replica_and_r2_w2_still_succeed(cluster):
    """kill -9 a primary of a key; quorum reads and writes of it keep working."""
    assert cluster.request("PUT", "n1", "/buckets/b/keys/k?w=3", b"v1").status == 204
    victim = cluster.replicas("n1", "b", "k")[0]["node"]
    others = [n for n in cluster.config.node_names() if n != victim]
    cluster.kill9(victim)
    r = cluster.request("PUT", others[0], "/buckets/b/keys/k?w=2", b"v2")
    assert r.status == 204, r.body
    for name in others:
        r = cluster.request("GET", name, "/buckets/b/keys/k?r=2")
        assert (r.status, r.body) == (200, b"v2")
    # Many keys, so some coordinators are primaries, some forward, some use fallbacks.
    for i in range(40):
        r = cluster.request("PUT", others[i % 4], f"/buckets/many/keys/{i}?w=2", b"x%d" % i)
        assert r.status == 204, r.body
    for i in range(40):
        r = cluster.request("GET", others[(i + 1) % 4], f"/buckets/many/keys/{i}?r=2")
        assert (r.status, r.body) == (200, b"x%d" % i)


def test_read_repair_restores_a_replica_whose_copy_was_removed(cluster):
    """Remove one replica's copy from its LevelDB; a read puts it back."""
    assert cluster.request("PUT", "n1", "/buckets/b/keys/rr?w=3", b"precious").status == 204
    entry = cluster.replicas("n1", "b", "rr")[1]
    victim, partition = entry["node"], entry["partition"]
    reader = next(n for n in cluster.config.node_names() if n != victim)

    assert cluster.cli("down", victim).returncode == 0
    backend = LevelDBBackend(cluster.config.node_dir(victim) / "data")
    okey = object_key(b"default", b"b", b"rr")
    assert backend.get(partition, okey) is not None
    backend.delete(partition, okey, sync=True)
    backend.close()
    cluster.up(victim)
    # Wait until the reader routes to the restarted node again, then check the copy is gone.
    eventually_sync(
        lambda: (
            {x["node"] for x in cluster.replicas(reader, "b", "rr") if x["primary"]} >= {victim}
        ),
        what=f"{reader} to see {victim} up",
    )
    status = {x["node"]: x["status"] for x in cluster.replicas(reader, "b", "rr")}
    assert status[victim] == "notfound"

    r = cluster.request("GET", reader, "/buckets/b/keys/rr")
    assert (r.status, r.body) == (200, b"precious")
    eventually_sync(
        lambda: (
            {x["node"]: x["status"] for x in cluster.replicas(reader, "b", "rr")}[victim] == "found"
        ),
        what="read repair",
    )
    vclocks = {x["vclock"] for x in cluster.replicas(reader, "b", "rr")}
    assert len(vclocks) == 1


def test_bad_request_changes_nothing(cluster):
    assert cluster.request("PUT", "n1", "/buckets/b/keys/k", b"good").status == 204
    bad = [
        ("PUT", "/buckets/b/keys/k?w=9", {}, 400),
        ("PUT", "/buckets/b/keys/k", {"X-Riak-Vclock": "garbage!"}, 400),
        ("PUT", "/types/unknown/buckets/b/keys/k", {}, 404),
    ]
    for method, path, headers, status in bad:
        r = cluster.request(method, "n2", path, b"bad", headers)
        assert r.status == status and r.body.strip(), (path, r.status)
    big = b"x" * (cluster.config.max_object_size + 1)
    assert cluster.request("PUT", "n3", "/buckets/b/keys/k", big).status == 413
    assert cluster.request("GET", "n4", "/buckets/b/keys/k").body == b"good"


def test_foreground_up_stops_nodes_on_ctrl_c(tmp_path):
    """`spinekv up` stays in the foreground with a status line; Ctrl-C stops its nodes."""
    path = write_cluster_toml(tmp_path, 3)
    config = load_config(path)
    cli = subprocess.Popen(
        [sys.executable, "-m", "spinekv", "--config", str(path), "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        # SIGINT as a terminal's foreground job has it. Inherited as it is, it is ignored
        # whenever pytest itself was started as a background job of a non-interactive shell
        # (`python -m pytest &`), and then `up` rightly never sees this test's Ctrl-C.
        preexec_fn=_default_sigint,
    )
    cluster = ProcessCluster(path)
    try:
        eventually_sync(
            lambda: all(cluster.pid(n) and processes.ping(config, n) for n in config.node_names()),
            what="the foreground cluster to serve",
            timeout=60,
        )
        pids = [cluster.pid(n) for n in config.node_names()]
        # Ctrl-C as soon as the nodes answer, maybe before `up` has finished waiting for
        # them to connect: it must stop them either way.
        cli.send_signal(signal.SIGINT)
        out, _ = cli.communicate(timeout=60)
        assert cli.returncode == 0, out
        assert "stopping" in out
        for pid in pids:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        for name in config.node_names():
            assert not (config.node_dir(name) / "node.pid").exists()
    finally:
        if cli.poll() is None:
            cli.kill()
        cluster.kill_all()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_up_named_nodes_and_down_reports(tmp_path):
    cluster = ProcessCluster(write_cluster_toml(tmp_path, 5))
    try:
        cluster.up("n1", "n2", "n3")
        assert [cluster.pid(n) is not None for n in cluster.config.node_names()] == [
            True,
            True,
            True,
            False,
            False,
        ]
        out = cluster.cli("down", "n2").stdout
        assert "n2: stopped" in out
        assert cluster.pid("n2") is None
        out = cluster.cli("down", "n2").stdout
        assert "n2: not running" in out
        bad = cluster.cli("up", "--detach", "n9")
        assert bad.returncode != 0 and "unknown node" in bad.stderr + bad.stdout
    finally:
        cluster.cli("down")
        cluster.kill_all()


def test_a_second_copy_of_a_running_node_exits_and_leaves_the_pid_file_alone(cluster):
    pid = cluster.pid("n1")
    second = cluster.cli("node", "n1", timeout=30)
    assert second.returncode != 0
    assert "node n1 cannot start" in second.stderr and "Traceback" not in second.stderr
    assert cluster.pid("n1") == pid  # still names the live node, so `down` can stop it
    assert cluster.request("GET", "n1", "/ping").status == 200
