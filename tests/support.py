"""Shared test helpers: free ports and throwaway cluster.toml files."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> list[int]:
    """Distinct ports that are free now, held open together while they are chosen.

    They come from below the kernel's ephemeral range: a port from inside it (port 0)
    can be taken, before a node listens on it, as the source port of another node's
    outgoing connection, and the node then fails with EADDRINUSE.
    """
    low = max(_ephemeral_low(), 2048)
    socks: list[socket.socket] = []
    try:
        while len(socks) < count:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", random.randrange(1024, low)))
            except OSError:
                s.close()
                continue
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def write_cluster_toml(
    folder: Path,
    nodes: int = 5,
    *,
    ring_size: int = 64,
    n_val: int = 3,
    max_object_size: int = 65536,
    extra: str = "",
    spare: int = 0,
    hosts: list[str] | None = None,
) -> Path:
    """A cluster.toml for `nodes` members plus `spare` member = false nodes; returns its path.

    `hosts` gives each node (members, then spares) its own address; all 127.0.0.1 without it.
    """
    if hosts is not None and len(hosts) != nodes + spare:
        raise ValueError(f"{len(hosts)} hosts for {nodes + spare} nodes")
    ports = free_ports(2 * (nodes + spare))
    lines = [
        "[cluster]",
        'name = "test"',
        f"ring_size = {ring_size}",
        f"n_val = {n_val}",
        "request_timeout_ms = 5000",
        f"max_object_size = {max_object_size}",
        "",
        "[bucket_defaults]",
        'r = "quorum"',
        'w = "quorum"',
        "",
        "[bucket_types.records]",
        "",
        extra,
    ]
    for i in range(nodes + spare):
        host = hosts[i] if hosts is not None else "127.0.0.1"
        lines += [
            "[[node]]",
            f'name = "n{i + 1}"',
            f'host = "{host}"',
            f"http_port = {ports[2 * i]}",
            f"peer_port = {ports[2 * i + 1]}",
            *(["member = false"] if i >= nodes else []),
            "",
        ]
    path = folder / "cluster.toml"
    path.write_text("\n".join(lines))
    return path
