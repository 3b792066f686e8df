"""`spinekv up` tells the truth: about nodes that could not start, about which cluster file's
nodes it runs, and about which nodes are members."""

from __future__ import annotations

import http.server
import threading

from tests.support import eventually_sync, write_cluster_toml

from .conftest import ProcessCluster


class ImpostorNode(http.server.BaseHTTPRequestHandler):
    """Another cluster's node on our port: /ping says OK, /admin/node says who it is."""

    def do_GET(self) -> None:
        body = b"OK" if self.path == "/ping" else b'{"node": "n1", "pid": 1, "cluster": "other"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_up_reports_a_node_whose_port_another_server_holds(tmp_path):
    """With n1's HTTP port answered by something else, `up` says why n1 did not start and
    fails, instead of trusting the stranger's /ping."""
    cluster = ProcessCluster(write_cluster_toml(tmp_path, 3))
    spec = cluster.config.node("n1")
    impostor = http.server.ThreadingHTTPServer((spec.host, spec.http_port), ImpostorNode)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    try:
        result = cluster.cli("up", "--detach")
        out = result.stdout + result.stderr
        assert result.returncode == 1, out
        assert f"n1: port {spec.http_port} is in use" in out
        assert "serving" not in out
        # The node exited with that one line, not a traceback.
        log = (cluster.config.node_dir("n1") / "log").read_text()
        assert f"node n1 cannot start: port {spec.http_port} is in use" in log
        assert "Traceback" not in log
        assert cluster.pid("n1") is None
        # The nodes that could start keep running (--detach): free the port, `up` again.
        assert cluster.pid("n2") and cluster.pid("n3")
        impostor.shutdown()
        impostor.server_close()
        again = cluster.cli("up", "--detach")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "n2: already running" in again.stdout and "serving" in again.stdout
    finally:
        impostor.shutdown()
        impostor.server_close()
        cluster.cli("down")
        cluster.kill_all()


def test_up_in_the_foreground_fails_on_a_taken_peer_port(tmp_path):
    cluster = ProcessCluster(write_cluster_toml(tmp_path, 3))
    spec = cluster.config.node("n2")
    with http.server.HTTPServer((spec.host, spec.peer_port), ImpostorNode):
        try:
            result = cluster.cli("up", "n2")
        finally:
            cluster.kill_all()
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"n2: port {spec.peer_port} is in use" in result.stdout


def test_two_cluster_files_in_one_folder_keep_their_nodes_apart(tmp_path):
    """`--config other.toml down n1` stops other.toml's n1 and never the default cluster's."""
    # Same folder, same node names, different ports.
    other_path = write_cluster_toml(tmp_path, 1, n_val=1, ring_size=8).rename(
        tmp_path / "other.toml"
    )
    default = ProcessCluster(write_cluster_toml(tmp_path, 1, n_val=1, ring_size=8))
    other = ProcessCluster(other_path)
    try:
        default.up("n1")
        other.up("n1")
        assert other.config.node_dir("n1") == tmp_path / "nodes-other" / "n1"
        assert default.config.node_dir("n1") == tmp_path / "nodes" / "n1"
        default_pid, other_pid = default.pid("n1"), other.pid("n1")
        assert default_pid and other_pid and default_pid != other_pid

        # --config after the subcommand; messages name the file in use.
        stop = other.cli("down", "n1", "--config", str(other_path))
        assert "n1: stopped" in stop.stdout and "other.toml" in stop.stdout, stop.stdout
        assert other.pid("n1") is None
        assert default.pid("n1") == default_pid
        assert default.request("GET", "n1", "/ping").status == 200
        unknown = other.cli("down", "n9")
        assert unknown.returncode != 0 and "other.toml has n1" in unknown.stderr
    finally:
        default.cli("down")
        other.cli("down")
        default.kill_all()
        other.kill_all()


def _ring(cluster: ProcessCluster, via: str) -> dict[str, str]:
    ring = cluster.request("GET", via, "/admin/ring").json()
    return {m["node"]: m["status"] for m in ring["members"]}


def test_a_node_that_left_is_not_started_again_by_a_plain_up(tmp_path):
    cluster = ProcessCluster(write_cluster_toml(tmp_path, 4, ring_size=16))
    try:
        cluster.up()
        assert cluster.cli("admin", "leave", "n4").returncode == 0
        assert cluster.cli("admin", "commit").returncode == 0
        eventually_sync(
            lambda: cluster.pid("n4") is None, what="n4 to hand off and stop itself", timeout=60
        )
        eventually_sync(
            lambda: "n4" not in _ring(cluster, "n1"), what="n4 to leave the ring", timeout=30
        )

        # Asked a running node: n4 is no longer a member.
        result = cluster.cli("up", "--detach")
        assert result.returncode == 0, result.stdout + result.stderr
        assert cluster.pid("n4") is None
        # With every node stopped, the rings the nodes saved say the same.
        assert cluster.cli("down").returncode == 0
        result = cluster.cli("up", "--detach")
        assert result.returncode == 0, result.stdout + result.stderr
        assert [cluster.pid(n) is not None for n in ("n1", "n2", "n3", "n4")] == [
            True,
            True,
            True,
            False,
        ]
        assert set(_ring(cluster, "n2")) == {"n1", "n2", "n3"}
        # Named, it still starts (as a node outside the ring, ready to join again).
        cluster.up("n4")
        identity = cluster.request("GET", "n4", "/admin/node").json()
        assert identity == {"node": "n4", "pid": cluster.pid("n4"), "cluster": "test"}
    finally:
        cluster.cli("down")
        cluster.kill_all()
