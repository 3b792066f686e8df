"""Several real nodes in one event loop (real TCP between them, memory backends) for tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from spinekv.config import load_config
from spinekv.ring import primaries
from spinekv.security.secrets import cluster_secret
from spinekv.server import Node, peer_transport
from spinekv.storage.memory import MemoryBackend
from spinekv.transport.tcp import TcpTransport
from tests.support import eventually, write_cluster_toml


def make_node(config, spec, backend, transport_class: type[TcpTransport] = TcpTransport):
    """A node over `backend`, its peers reached through `transport_class` (a fault-injecting
    subclass in some tests)."""
    secret = cluster_secret(config.secret_file)
    transport = peer_transport(config, spec.name, secret, transport_class)
    node = Node(config, spec.name, backend=backend, transport=transport, secret=secret)
    node.handoff.interval = 0.2  # hand off promptly in tests
    return node


class Cluster:
    def __init__(self, config, nodes, backends, transport_class: type[TcpTransport]):
        self.config = config
        self.nodes = {n.name: n for n in nodes}
        self.backends = backends
        self.transport_class = transport_class

    def url(self, name: str) -> str:
        return self.config.http_url(name)

    async def stop(self, name: str) -> None:
        await self.nodes.pop(name).stop()

    async def restart(self, name: str) -> None:
        """Start `name` again over the store it had (as a restarted process would)."""
        spec = self.config.node(name)
        node = make_node(self.config, spec, self.backends[name], self.transport_class)
        await node.start()
        self.nodes[name] = node

    async def set_props(self, http, bucket_type: str, bucket: str, props: dict) -> None:
        """Set a bucket's props through n1's HTTP API; return once every node has them."""
        url = f"{self.url('n1')}/types/{bucket_type}/buckets/{bucket}/props"
        async with http.put(url, json={"props": props}) as r:
            assert r.status == 204, await r.text()

        def everywhere() -> bool:
            held = [node.props_of(bucket_type, bucket) for node in self.nodes.values()]
            return all(p is not None and p.to_json(props) == props for p in held)

        await eventually(everywhere, what=f"the props of {bucket_type}/{bucket} on every node")

    def replicas(self, bucket_type: bytes, bucket: bytes, key: bytes):
        """(partition, node) of every primary replica of a key."""
        node = next(iter(self.nodes.values()))
        ring = node.membership.ring
        p = ring.partition_of(bucket_type, bucket, key)
        return [(e.partition, e.node) for e in primaries(ring, p, 3)]


@contextlib.asynccontextmanager
async def inproc_cluster(
    folder: Path,
    nodes: int = 5,
    *,
    ring_size: int = 16,
    extra: str = "",
    transport_class: type[TcpTransport] = TcpTransport,
    backend: Callable[[], MemoryBackend] = MemoryBackend,
) -> AsyncIterator[Cluster]:
    """Start `nodes` nodes in this loop and wait until all see each other; stop them after.

    `transport_class` and `backend` (a factory) let a test inject faults (tests/support.py).
    """
    config = load_config(write_cluster_toml(folder, nodes, ring_size=ring_size, extra=extra))
    backends = {spec.name: backend() for spec in config.nodes}
    started = [
        make_node(config, spec, backends[spec.name], transport_class) for spec in config.nodes
    ]
    c = Cluster(config, started, backends, transport_class)
    try:
        for node in started:
            await node.start()

        async def all_see_all() -> bool:
            # The first probes ran before later nodes listened; probe again now rather than
            # wait out the probe interval (half a second of every test's setup otherwise).
            await asyncio.gather(
                *(
                    a.membership.probe(b.name)
                    for a in started
                    for b in started
                    if not a.membership.is_up(b.name)
                )
            )
            return all(a.membership.is_up(b.name) for a in started for b in started)

        await eventually(all_see_all, what="every node to see every other up")
        yield c
    finally:
        for node in list(c.nodes.values()):
            await node.stop()


def unstarted_app(folder: Path) -> web.Application:
    """The HTTP app of a one-node cluster's node that is built but never started (no sockets)."""
    config = load_config(write_cluster_toml(folder, 1))
    return make_node(config, config.nodes[0], MemoryBackend()).http_app()
