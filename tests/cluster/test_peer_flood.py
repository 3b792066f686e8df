"""A stranger on the peer port cannot grow a node's memory: the issue's attack, replayed.

Ten sockets each send a 64 MiB frame header (then start on the frame) to a running node.
Before authentication no frame over a few KiB is read, so each is closed at once; the
node's resident memory stays within a few MiB of where it was, and it still serves.
"""

from __future__ import annotations

import contextlib
import socket
import struct

import psutil

from tests.support import eventually_sync, write_cluster_toml

from .conftest import running_cluster

HEADER = struct.pack(">I", 64 * 1024 * 1024)


def flood(host: str, port: int) -> int:
    """Send the header and up to 8 MiB of its frame; the bytes sent before the node hung up."""
    sent = 0
    with socket.create_connection((host, port), timeout=5) as sock:
        with contextlib.suppress(OSError):  # reset or broken pipe: the node hung up, as it should
            sock.sendall(HEADER)
            chunk = b"\0" * 65536
            for _ in range(128):
                sock.sendall(chunk)
                sent += len(chunk)
        with contextlib.suppress(OSError):
            assert sock.recv(1) == b""  # closed from the other end, nothing said
    return sent


def test_ten_huge_frame_headers_leave_the_node_small_and_serving(tmp_path, request):
    with running_cluster(write_cluster_toml(tmp_path, 3), request) as cluster:
        assert cluster.request("PUT", "n1", "/buckets/b/keys/k", b"before").status == 204
        node = psutil.Process(cluster.pid("n1"))
        before = node.memory_info().rss
        spec = cluster.config.node("n1")
        for _ in range(10):
            flood(spec.host, spec.peer_port)
        after = node.memory_info().rss
        # The issue saw 51 MB grow to 681 MB; the bound is one socket read per stranger.
        assert after - before < 16 * 1024 * 1024, (before, after)
        assert "closing inbound connection" in (cluster.config.node_dir("n1") / "log").read_text()
        assert cluster.request("PUT", "n1", "/buckets/b/keys/k2", b"after").status == 204
        eventually_sync(
            lambda: cluster.request("GET", "n2", "/buckets/b/keys/k2?r=3").body == b"after",
            what="the write after the flood to be readable at r=3",
        )
