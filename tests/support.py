"""Shared test helpers: free ports and throwaway cluster.toml files."""

from __future__ import annotations

import socket
from pathlib import Path


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out as free; held open together so they are distinct."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
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
