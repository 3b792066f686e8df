"""The composition root: builds one node's parts, wires the internode dispatch table, serves HTTP.

Dependencies point one way: node/ (vnodes, membership, coordinator, handoff,
coverage) and records/ know nothing of HTTP; http/ knows the parts it serves.
`Node` builds the parts over an injected backend, transport, clock and RNG (the
simulation passes its own and never starts HTTP); `http_app` puts the HTTP API
on top; `run_node` is the process `spinekv up` starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import random
import signal
import ssl
import sys
from pathlib import Path

from aiohttp import web

from .buckets import Resolver
from .clock import Clock, SystemClock
from .config import ClusterConfig, ConfigError, NodeSpec, load_config
from .http import openapi
from .http.admin import AdminHandlers
from .http.audit import AuditHandlers
from .http.folds import FoldHandlers
from .http.kv import KVHandlers
from .http.pds import PdsRoutes
from .http.props import PropsHandlers
from .http.query import QueryHandlers
from .http.records import records_middleware
from .http.repl import ReplHandlers
from .http.scr import ScrRoutes
from .http.security import AUTHENTICATOR, security_middleware
from .http.service import ServiceHandlers, stats_middleware
from .http.trace import TraceRoutes
from .http.users import UserHandlers
from .node import aae, exchange, messages
from .node.coordinator import Coordinator
from .node.coverage import Coverage
from .node.handoff import Handoff
from .node.membership import Membership
from .node.messages import Dispatcher
from .node.reapgate import ReapGate
from .node.replqueues import ReplQueues
from .node.replsink import SinkPullers
from .node.vnode import Vnodes
from .records.audit import HEAD_META, AuditLog
from .records.services import SEALED, RecordServices
from .records.store import RecordStore
from .security.auth import Authenticator
from .security.secrets import DEMO_TOKENS, SecretError, cluster_secret, derive_key
from .security.sources import client_address
from .security.tls import server_context
from .security.users import Users, demo_users
from .stats import NodeStats
from .storage.base import Backend, StorageError
from .storage.leveldb import LevelDBBackend
from .transport.base import Transport
from .transport.tcp import TcpTransport, frame_limit

log = logging.getLogger("spinekv.node")


class Node:
    """A node's parts; I/O (backend, transport) and time are injected."""

    def __init__(
        self,
        config: ClusterConfig,
        name: str,
        *,
        backend: Backend,
        transport: Transport,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.config = config
        self._secret = secret
        self.spec = config.node(name)
        self.name = name
        self.backend = backend
        self.transport = transport
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.vnodes = Vnodes(name, backend, self.rng)
        self.membership = Membership(
            config, name, transport, backend, self.vnodes, clock=self.clock, rng=self.rng
        )
        # (type, bucket) -> effective props from the gossiped bucket metadata; None: no such type.
        self.props_of = Resolver(config, lambda: self.membership.buckets)
        # name -> User: cluster.toml's users under the gossiped metadata's (security/users.py).
        self.users = Users(config, lambda: self.membership.buckets)
        self.authenticator = Authenticator(config, self.users, self.clock.monotonic)
        # Set when this node has left the cluster and handed everything off.
        self.exited = asyncio.Event()
        self.membership.on_exit = self.exited.set
        self.coverage = Coverage(
            name, self.membership, self.vnodes, transport, lambda: self.stats.backlog
        )
        self.coordinator = Coordinator(
            name, self.membership, self.vnodes, transport, self.now_us, self.coverage
        )
        self.handoff = Handoff(
            name,
            self.membership,
            self.vnodes,
            transport,
            self._allow_mult_of,
            batch_bytes=config.max_object_size,
        )
        self.membership.listeners.append(self.handoff.kick)
        # Queues sinks pull ([[replication.source]]), fed by acknowledged client writes.
        self.repl_queues = ReplQueues(config.replication.sources, backend, self.clock.time)
        self.coordinator.listeners.append(self.repl_queues.on_write)
        # Reaping a tombstone waits until no member's queue holds its key for a sink.
        self.reap_gate = ReapGate(
            name,
            self.membership,
            transport,
            self.repl_queues,
            self.coordinator.writing,
            config.request_timeout_ms / 1000,
        )
        self.coordinator.reap_gate = self.reap_gate.check
        # Request statistics for /stats, kept by the HTTP middleware; their backlog paces AAE.
        self.stats = NodeStats(self.clock.monotonic)
        self.aae = self._aae_trees()
        self.exchanges = self._exchanges()
        # Pullers of other clusters' queues ([[replication.sink]]), paced by the same backlog.
        self.repl_sinks = SinkPullers(
            config,
            name,
            self.coordinator,
            self.props_of,
            clock=self.clock,
            backlog=lambda: self.stats.backlog,
            pause_backlog=config.aae.pause_backlog,
        )
        self.dispatch = self._dispatch_table()
        self._runner: web.AppRunner | None = None
        # The node names in the config file as it is now, and the file's mtime they are from.
        self._names_on_disk: tuple[int, frozenset[str]] = (0, frozenset())

    def _aae_trees(self) -> aae.AaeTrees | None:
        """The node's Tictac trees, kept by every vnode change; None with [aae] enabled = false."""
        if not self.config.aae.enabled:
            aae.forget_persisted(self.backend)
            return None
        trees = aae.AaeTrees(
            self.config,
            self.name,
            self.vnodes,
            self.backend,
            lambda: self.membership.ring,
            lambda: self.membership.buckets,
            self.props_of,
            clock=self.clock,
            rng=self.rng,
        )
        self.vnodes.listeners.append(trees.on_change)
        self.membership.listeners.append(trees.sync_ownership)
        return trees

    def _exchanges(self) -> exchange.Exchanges | None:
        """Anti-entropy exchanges of the node's trees with its peers' (None without trees)."""
        if self.aae is None:
            return None
        return exchange.Exchanges(
            self.name,
            self.aae,
            self.membership,
            self.handoff,
            self.coordinator,
            self.transport,
            self.props_of,
            tick=self.config.aae.tick_ms / 1000,
            max_bytes=self.config.max_object_size,
            clock=self.clock,
            rng=self.rng,
            backlog=lambda: self.stats.backlog,
            pause_backlog=self.config.aae.pause_backlog,
            max_repairs=self.config.aae.max_repairs,
        )

    def counters(self) -> dict[str, int]:
        """Anti-entropy, reaper, replication queue and sink totals since start, for /stats."""
        return {
            **exchange.stat_counters(self.exchanges, self.aae),
            "tombstones_reaped": self.vnodes.reaped,
            **self.repl_queues.stat_counters(),
            **self.repl_sinks.stat_counters(),
        }

    def _dispatch_table(self) -> Dispatcher:
        """Each internode message type to the part that owns it."""
        table = Dispatcher()
        table.route(messages.Get, self.vnodes.serve_get)
        table.route(messages.Put, self.vnodes.serve_put)
        table.route(messages.Reap, self.vnodes.serve_reap)
        table.route(messages.ReplHolds, self.reap_gate.serve)
        table.route(messages.CoordinatePut, self.coordinator.serve_coordinate_put)
        table.route(messages.HandoffBatch, self.handoff.receive)
        table.route(messages.Cover, self.coverage.serve)
        table.route(messages.Gossip, self.membership.serve_gossip)
        table.route(messages.Ping, self.membership.serve_ping)
        ex = self.exchanges
        table.route(messages.AaeRoot, exchange.refuse if ex is None else ex.serve_root)
        table.route(messages.AaeBranches, exchange.refuse if ex is None else ex.serve_branches)
        table.route(messages.AaeSegments, exchange.refuse if ex is None else ex.serve_segments)
        table.route(messages.AaeKeys, exchange.refuse if ex is None else ex.serve_keys)
        if table.missing():
            raise RuntimeError(f"message types without a handler: {table.missing()}")
        return table

    def _allow_mult_of(self, bucket_type: bytes, bucket: bytes) -> bool:
        props = self.props_of(bucket_type.decode(errors="replace"), bucket.decode(errors="replace"))
        # A type this node does not know yet (or not active here yet): keep siblings, lose nothing.
        return True if props is None else props.allow_mult

    @functools.cached_property
    def secret(self) -> bytes:
        """The cluster secret (given, else read from the config's secret_file on first use).

        Keys derived from it (security.secrets.derive_key) authenticate peers and sign records.
        """
        if self._secret is not None:
            return self._secret
        return cluster_secret(self.config.secret_file)

    def now_us(self) -> int:
        return int(self.clock.time() * 1_000_000)

    @functools.cached_property
    def records(self) -> RecordServices:
        """The record API's services on this node (PDS, SCR, trace share one store)."""
        store = RecordStore(
            self.coordinator,
            self.props_of,
            self.now_us,
            mac_key=derive_key(self.secret, "record mac"),
            sealed=SEALED,
            bucket_type=self.config.records.bucket_type,
            timeout_ms=self.config.request_timeout_ms,
            rng=self.rng,
        )
        audit = AuditLog(
            store,
            self.name,
            derive_key(self.secret, "audit chain"),
            load_head=lambda: self.backend.get_meta(HEAD_META),
            # Not fsynced: an fsync per audited read would stall the event loop, and a head
            # a power cut left behind is carried forward past the links stored after it.
            save_head=lambda head: self.backend.put_meta(HEAD_META, head, sync=False),
        )
        return RecordServices(self.config, store, audit)

    def http_app(self) -> web.Application:
        return http_app(self)

    def _admit(self, peer_hello: dict) -> str | None:
        """Why a peer's hello is refused: another cluster or protocol, or a name this node
        does not know. The transport then makes it prove the cluster secret."""
        refusal = messages.hello_refusal(self.config.name, peer_hello)
        if refusal is not None:
            return refusal
        name = peer_hello["name"]
        if name == self.name:
            return f"it claims this node's own name {name!r}"
        if self._known_peer(name):
            return None
        return f"unknown node {name!r} (not in {self.config.path.name} nor in the ring)"

    def _known_peer(self, name: str) -> bool:
        """A node this one knows (its config, peers it learnt, ring members), or one the
        config file names now: a node added to the file while the cluster runs."""
        membership = self.membership
        if name in membership.known() or membership.state.status(name) is not None:
            return True
        return name in self._config_file_names()

    def _config_file_names(self) -> frozenset[str]:
        # Parsed again only when the file changed: a stranger's hello costs one stat().
        try:
            stamp = self.config.path.stat().st_mtime_ns
        except OSError:
            return frozenset()
        if stamp != self._names_on_disk[0]:
            try:
                names = frozenset(load_config(self.config.path).node_names())
            except ConfigError as exc:
                log.warning("cannot read %s for new node names: %s", self.config.path, exc)
                names = self._names_on_disk[1]
            self._names_on_disk = (stamp, names)
        return self._names_on_disk[1]

    def _on_hello(self, peer_hello: dict) -> None:
        """An authenticated peer this node's cluster.toml does not name (added to the file
        since we started) becomes reachable at the address it gave, and is probed from now
        on. Only called once the peer proved the cluster secret."""
        update = getattr(self.transport, "update_peers", None)
        if update is None:  # a transport whose peers are fixed (the simulation's network)
            return
        name = peer_hello["name"]
        address = messages.peer_address(peer_hello)
        peers = self.transport.peers()  # type: ignore[attr-defined]
        if name in peers or name == self.name or address is None:
            return
        update({**peers, name: address})
        self.membership.learn(name)

    async def start(self, *, serve_http: bool = True) -> None:
        # Read the certificate before anything listens: a bad file stops the node, saying which.
        https = _https_context(self.config, self.name) if serve_http else None
        self.repl_sinks.start()  # first too: a missing token file stops the node, saying which
        await self.transport.start(
            self.dispatch,
            hello=messages.hello(self.config.name, self.spec.host, self.spec.peer_port),
            admit=self._admit,
            on_hello=self._on_hello,
        )
        self.membership.start()
        self.handoff.start()
        if self.aae is not None:
            self.aae.start()
        if self.exchanges is not None:
            self.exchanges.start()
        if serve_http:
            self._runner = web.AppRunner(http_app(self), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(
                self._runner,
                self.spec.host,
                self.spec.http_port,
                reuse_address=True,
                ssl_context=https,
            )
            await site.start()
        log.info(
            "node %s serving %s peer %d",
            self.name,
            self.config.http_url(self.name),
            self.spec.peer_port,
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.repl_sinks.stop()
        if self.exchanges is not None:
            await self.exchanges.stop()
        await self.handoff.stop()
        await self.membership.stop()
        await self.coordinator.close()
        await self.transport.close()
        if self.aae is not None:  # last: no write may change the data after the trees are saved
            await self.aae.stop()
        self.backend.close()


def http_app(node: Node) -> web.Application:
    """The node's HTTP API: Riak's KV, query, props, admin and service routes, the record API."""
    stats = node.stats
    middlewares = [stats_middleware(stats, node.clock.monotonic), records_middleware]
    if node.config.security.enabled:
        middlewares.append(security_middleware(node.config))
    else:
        log.warning(
            "node %s: [security] enabled = false: the HTTP API is open to anyone who can "
            "reach it (the record API still asks for tokens)",
            node.name,
        )
    app = web.Application(client_max_size=node.config.max_object_size + 1, middlewares=middlewares)
    app[AUTHENTICATOR] = node.authenticator
    config, coordinator, props_of = node.config, node.coordinator, node.props_of
    handlers = [
        KVHandlers(config, coordinator, node.now_us, props_of=props_of),
        PropsHandlers(config, node.membership),
        AdminHandlers(config, coordinator, node.handoff, node.aae, node.exchanges),
        UserHandlers(config, node.membership),
        ServiceHandlers(
            config,
            coordinator,
            stats,
            type(node.backend).__name__,
            props_of=props_of,
            counters=node.counters,
        ),
        QueryHandlers(config, coordinator, node.now_us, props_of=props_of),
        FoldHandlers(config, coordinator, node.now_us, props_of),
        ReplHandlers(config, coordinator, node.repl_queues, props_of, node.clock.monotonic),
        PdsRoutes(node.records),
        TraceRoutes(node.records),
        ScrRoutes(node.records),
        AuditHandlers(node.records),
    ]
    # The routes carry their OpenAPI descriptions; /openapi.json is built from them.
    openapi.add_routes(app, [route for handler in handlers for route in handler.routes()])
    return app


def peer_transport(
    config: ClusterConfig,
    name: str,
    secret: bytes,
    transport_class: type[TcpTransport] = TcpTransport,
) -> TcpTransport:
    """The peer port of node `name`: authenticated with the cluster secret (inside mutual
    TLS when [tls] is set), with the [security] limits and frames sized to max_object_size."""
    spec = config.node(name)
    peers = {n.name: (n.host, n.peer_port) for n in config.nodes if n.name != name}
    limits = config.security
    return transport_class(
        name,
        spec.host,
        spec.peer_port,
        peers,
        secret=secret,
        tls=config.tls,
        max_frame=frame_limit(config.max_object_size),
        hello_timeout=limits.hello_timeout_ms / 1000,
        max_unauthenticated=limits.max_unauthenticated_peers,
        idle_timeout=limits.peer_idle_timeout_ms / 1000,
    )


def build_node(config: ClusterConfig, name: str, backend: Backend) -> Node:
    """A node over `backend` (its LevelDB files) and real TCP, as `spinekv up` runs it."""
    secret = cluster_secret(config.secret_file)
    try:
        transport = peer_transport(config, name, secret)
    except (OSError, ssl.SSLError) as exc:  # the peer port's mutual-TLS files
        raise _tls_failure(config, name, exc) from None
    return Node(config, name, backend=backend, transport=transport, secret=secret)


class CannotListen(Exception):
    """The node cannot take its ports, or serve on them; the message is the one-line reason."""


def _https_context(config: ClusterConfig, name: str) -> ssl.SSLContext | None:
    """With [tls], the HTTP port speaks HTTPS only, with the node's certificate."""
    if config.tls is None:
        return None
    try:
        return server_context(config.tls, name, require_client_cert=False)
    except (OSError, ssl.SSLError) as exc:
        raise _tls_failure(config, name, exc) from None


def _tls_failure(config: ClusterConfig, name: str, exc: Exception) -> CannotListen:
    assert config.tls is not None
    return CannotListen(
        f"cannot load its TLS certificate {config.tls.cert_for(name)} "
        f"(key {config.tls.key_for(name)}, CA {config.tls.ca}): {exc}"
    )


class UnsafeCredentials(Exception):
    """The node would serve the documented demo credentials beyond loopback."""


def _is_loopback(host: str) -> bool:
    address = client_address(host)
    return host == "localhost" if address is None else address.is_loopback


def check_demo_credentials(node: Node) -> None:
    """Refuse to serve on an address other than loopback while any user (cluster.toml's
    or the metadata's) still has one of the documented demo tokens."""
    if _is_loopback(node.spec.host):
        return
    found = demo_users(node.users(), DEMO_TOKENS)
    if found:
        raise UnsafeCredentials(
            f"host {node.spec.host} is not loopback and user(s) {', '.join(found)} still have "
            f"the documented demo tokens; remove them or give them new tokens"
        )


def _listen_failure(spec: NodeSpec, exc: OSError) -> CannotListen:
    """The reason `spinekv up` shows for a port the node cannot listen on.

    The OSError names the address it failed on ("... on address ('127.0.0.1', 8099): ..."),
    which is how the port is told from the other.
    """
    port = next(
        (p for p in (spec.peer_port, spec.http_port) if f", {p})" in str(exc)),
        f"{spec.http_port} or {spec.peer_port}",
    )
    if exc.errno == errno.EADDRINUSE:
        return CannotListen(f"port {port} is in use")
    return CannotListen(f"cannot listen on {spec.host} port {port}: {exc.strerror or exc}")


async def _serve(config: ClusterConfig, name: str, backend: Backend) -> None:
    node = build_node(config, name, backend)
    check_demo_credentials(node)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await node.start()
        except OSError as exc:
            raise _listen_failure(node.spec, exc) from None
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(node.exited.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        if node.exited.is_set():
            # A stale coordinator may still have sent a write here: send it on too.
            await node.handoff.stop()
            await node.handoff.drain()
        log.info("node %s stopping%s", name, " (left the cluster)" if node.exited.is_set() else "")
    finally:
        await node.stop()


def run_node(config_path: str | Path, name: str) -> None:
    """Run one node in this process until SIGTERM/SIGINT: pid file, log, event loop."""
    config = load_config(config_path)
    config.node(name)
    node_dir = config.node_dir(name)
    node_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=os.environ.get("SPINEKV_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Take the LevelDB lock before claiming the pid file: a second copy of a running
    # node must fail here, without overwriting (and then deleting) the live one's pid.
    try:
        backend = LevelDBBackend(node_dir / "data")
    except StorageError as exc:
        raise SystemExit(f"node {name} cannot start: {exc}") from None
    pid_file = node_dir / "node.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:  # uvloop is a dependency, but the node still runs without it
            runner = asyncio.run
        runner(_serve(config, name, backend))
    except (CannotListen, ConfigError, SecretError, UnsafeCredentials) as exc:
        # One line, no traceback: `spinekv up` finds it in the log and shows it.
        raise SystemExit(f"node {name} cannot start: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()
