"""TCP transport: length-prefixed msgpack frames, one authenticated, pipelined link per peer.

Every link opens with the handshake of security/handshake.py (inside mutual TLS
when [tls] is set): no request is read, and none sent, before both ends proved
they hold the cluster secret. What a stranger can make a node hold is bounded:
at most `max_unauthenticated` sockets at once, each closed after `hello_timeout`,
each buffering at most one read (256 KiB in asyncio and uvloop) plus one
handshake frame (MAX_HANDSHAKE_FRAME); with the defaults about 8.3 MiB in all.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import msgpack

from spinekv.config import TlsSettings
from spinekv.security import handshake as hs
from spinekv.security.tls import client_context, peer_common_name, server_context
from spinekv.transport.base import (
    Handler,
    RemoteError,
    RequestTimeout,
    TransportError,
    Unreachable,
)

__all__ = ["MAX_HANDSHAKE_FRAME", "FrameTooLarge", "TcpTransport", "frame_limit"]

log = logging.getLogger("spinekv.transport")

# Frame kinds: payload is [kind, request_id, body].
KIND_REQUEST = 0
KIND_REPLY = 1
KIND_ERROR = 2
KIND_HELLO = 3
KIND_CHALLENGE = 4
KIND_PROOF = 5

# A hello, challenge or proof is a few hundred bytes; until a link is authenticated
# nothing bigger is read from it.
MAX_HANDSHAKE_FRAME = 4096
# What a message adds to the objects it carries: keys, clocks, msgpack, a handoff's ring.
FRAME_OVERHEAD = 1 << 20


def frame_limit(max_object_size: int) -> int:
    """The largest frame between authenticated peers: an object of the largest size a
    client may write and one sibling as large, plus overhead (handoff cuts its batches
    to max_object_size)."""
    return 2 * max_object_size + FRAME_OVERHEAD


_HEADER = struct.Struct(">I")
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
_HEADER_SIZE = _HEADER.size


class FrameTooLarge(TransportError):
    """A request (or its reply) would exceed the transport's max_frame."""


def _unpack(data: Any) -> Any:
    # strict_map_key=False: messages are "any msgpack-able value", which includes int-keyed maps.
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _expire(fut: asyncio.Future[Any], peer: str, timeout: float) -> None:
    """Deadline timer for one request (cheaper than wait_for: no extra task or shield)."""
    if not fut.done():
        fut.set_exception(RequestTimeout(f"no reply from {peer} within {timeout:g}s"))


class _Connection(asyncio.Protocol):
    """Framing shared by both ends of a link: turns the byte stream into decoded frames."""

    role = "?"

    def __init__(self, owner: TcpTransport) -> None:
        self.owner = owner
        # Raised to the owner's max_frame once the handshake succeeded.
        self.max_frame = MAX_HANDSHAKE_FRAME
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop  # set by connection_made
        self.closed = False
        self.peername: Any = None
        self._buf = bytearray()
        # Frames queued behind the first write of this loop iteration (None: nothing queued).
        self._wqueue: list[bytes] | None = None
        # Traffic since the idle sweep last looked (a flag: cheaper than a clock per frame).
        self.active = True
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports don't subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.loop = asyncio.get_running_loop()
        self.peername = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                # Small request/reply frames must not wait for Nagle; keepalive eventually
                # notices a peer that vanished without a FIN.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            except (OSError, AttributeError):
                pass

    def describe(self) -> str:
        return f"{self.role} connection {self.peername}"

    def address(self) -> str:
        peer = self.peername
        if isinstance(peer, tuple) and len(peer) >= 2:
            return f"{peer[0]}:{peer[1]}"
        return repr(peer)

    def certificate_name(self) -> str | None:
        """The CN of the certificate the other end presented (None without TLS)."""
        assert self.transport is not None
        return peer_common_name(self.transport.get_extra_info("ssl_object"))

    def send_frame(self, kind: int, rid: int, body: Any) -> None:
        payload = self.owner._packer.pack([kind, rid, body])
        self.send(_pack_header(len(payload)) + payload)

    def send(self, frame: bytes) -> None:
        """Write one frame, coalescing the frames of one loop iteration into one syscall.

        The first frame goes out at once (no added latency for a lone request); the rest that
        pile up during the same iteration, typical under pipelining, are flushed together by
        one call_soon, instead of costing one send() each.
        """
        queue = self._wqueue
        if queue is not None:
            queue.append(frame)
            return
        self._wqueue = []
        self.active = True
        self.loop.call_soon(self._flush)
        self.transport.write(frame)  # type: ignore[union-attr]

    def _flush(self) -> None:
        queue = self._wqueue
        self._wqueue = None
        if not queue or self.closed:
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        # writelines: uvloop hands the list to one writev() without joining it.
        transport.writelines(queue)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.active = True
        buf = self._buf
        buf += data
        n = len(buf)
        pos = 0
        error: str | None = None
        # Decode straight out of the buffer through a memoryview so a frame is never copied
        # before msgpack sees it; the view must be released before the buffer is resized.
        with memoryview(buf) as view:
            while n - pos >= _HEADER_SIZE:
                (size,) = _unpack_header(buf, pos)
                if size > self.max_frame:
                    error = f"frame of {size} bytes exceeds max_frame ({self.max_frame})"
                    break
                start = pos + _HEADER_SIZE
                end = start + size
                if end > n:
                    break
                try:
                    frame = _unpack(view[start:end])
                except Exception as exc:
                    error = f"undecodable frame ({type(exc).__name__}: {exc})"
                    break
                pos = end
                if (
                    type(frame) is not list
                    or len(frame) != 3
                    or type(frame[0]) is not int
                    or type(frame[1]) is not int
                ):
                    error = f"malformed frame {_preview(frame)}"
                    break
                error = self.frame_received(frame[0], frame[1], frame[2])
                if error is not None or self.closed:
                    break
        if error is not None:
            self.protocol_error(error)
        elif self.closed:
            # Closed by the frame (a refused handshake); the rest is never read.
            self._buf = bytearray()
        elif pos == n:
            buf.clear()
        elif pos:
            del buf[:pos]

    def frame_received(self, kind: int, rid: int, body: Any) -> str | None:
        """Handle one decoded frame; return a reason string to drop the connection."""
        raise NotImplementedError

    def protocol_error(self, reason: str) -> None:
        raise NotImplementedError


# What a dialler hears when its proof (or a replay) fails: nothing about why.
_AUTH_FAILED = "authentication failed"


def _preview(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class _Outbound(_Connection):
    """The link this node dialled to a peer: carries our requests and their replies."""

    role = "outbound"

    def __init__(self, owner: TcpTransport, peer: str) -> None:
        super().__init__(owner)
        self.peer = peer
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.drop_reason = f"connection to {peer} closed"
        self.nonce = hs.new_nonce()
        # True once the peer proved the secret and our proof is sent; False if it never will.
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def describe(self) -> str:
        return f"outbound connection to {self.peer} {self.peername}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Tracked from the start: a dial cancelled by close() right after connecting would
        # otherwise leave this link open with nobody holding it.
        self.owner._outbound.add(self)
        if self.owner._tls is not None and self.certificate_name() != self.peer:
            self.refused(f"its certificate is for {self.certificate_name()!r}")
            return
        self.send_frame(KIND_HELLO, 0, {**self.owner._hello_fields, "nonce": self.nonce})

    def frame_received(self, kind: int, rid: int, body: Any) -> str | None:
        if kind == KIND_ERROR and rid == 0:
            # Request ids start at 1: an error for id 0 is the peer refusing our handshake.
            reason = body if isinstance(body, str) else repr(body)
            log.warning("%s refused us: %s", self.peer, reason)
            self.drop(f"peer {self.peer} refused the connection: {reason}", mark_down=True)
            return None
        if not self.ready.done():
            if kind != KIND_CHALLENGE:
                return f"frame kind {kind} before the handshake's challenge"
            self._answer(body)
            return None
        if kind == KIND_REPLY:
            fut = self.pending.pop(rid, None)
            # None: the request timed out or was cancelled; a late reply is simply dropped.
            if fut is not None and not fut.done():
                fut.set_result(body)
            return None
        if kind == KIND_ERROR:
            fut = self.pending.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_exception(RemoteError(body if isinstance(body, str) else repr(body)))
            return None
        return f"unexpected frame kind {kind} from the accepting side"

    def _answer(self, body: Any) -> None:
        """Check the acceptor's proof; only a peer that holds the secret gets ours."""
        challenge = hs.read_challenge(body)
        if isinstance(challenge, str):
            self.refused(challenge)
            return
        name, nonce_a, proof_a = challenge
        owner = self.owner
        if name != self.peer:
            self.refused(f"it says it is {name!r}")
            return
        transcript = (owner._cluster, owner.name, self.peer, self.nonce, nonce_a)
        if not hs.proof_matches(hs.accept_proof(owner._key, *transcript), proof_a):
            self.refused("it does not hold the cluster secret")
            return
        self.send_frame(KIND_PROOF, 0, {"proof": hs.dial_proof(owner._key, *transcript)})
        self.max_frame = owner.max_frame
        self.ready.set_result(True)

    def refused(self, reason: str) -> None:
        """The acceptor failed our checks: log who and where, never send it our proof."""
        log.warning("refused peer %r at %s: %s", self.peer, self.address(), reason)
        self.drop(f"peer {self.peer} failed the handshake: {reason}", mark_down=True)

    def protocol_error(self, reason: str) -> None:
        log.warning("closing %s: %s", self.describe(), reason)
        self.drop(f"peer {self.peer} sent a bad frame: {reason}", mark_down=True)

    def connection_lost(self, exc: Exception | None) -> None:
        detail = f": {exc}" if exc is not None else ""
        self.drop(f"connection to {self.peer} lost{detail}", mark_down=True)

    def drop(self, reason: str, *, mark_down: bool, abort: bool = False) -> None:
        """Tear the link down once: fail everything pending on it, tell the owner."""
        if self.closed:
            return
        self.closed = True
        self.drop_reason = reason
        self._buf = bytearray()
        if not self.ready.done():
            self.ready.set_result(False)
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(Unreachable(reason))
        self.owner._outbound.discard(self)
        self.owner._outbound_dropped(self, reason, mark_down)
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()


class _Inbound(_Connection):
    """A link a peer dialled to us: carries its requests and our replies.

    Until the handshake succeeds (`source` is set) only handshake frames are read, and
    the link counts against the owner's cap on unauthenticated sockets.
    """

    role = "inbound"

    def __init__(self, owner: TcpTransport) -> None:
        super().__init__(owner)
        self.source: str | None = None
        # (hello, nonce_d, nonce_a) once the hello was admitted and challenged.
        self._challenge: tuple[dict[str, Any], bytes, bytes] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def describe(self) -> str:
        who = self.source if self.source is not None else "unidentified peer"
        return f"inbound connection from {who} {self.peername}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        owner = self.owner
        owner.accepted += 1
        if len(owner._unauthenticated) >= owner.max_unauthenticated:
            if not owner._cap_logged:
                # Once per burst: a flood must not flood the log too.
                log.warning(
                    "closing connections from %s and others: %d peers are already "
                    "handshaking (max_unauthenticated_peers)",
                    self.address(),
                    len(owner._unauthenticated),
                )
                owner._cap_logged = True
            self.closed = True
            self.transport.abort()  # type: ignore[union-attr]
            return
        owner._inbound.add(self)
        owner._unauthenticated.add(self)
        self._deadline = self.loop.call_later(owner.hello_timeout, self._too_slow)

    def _too_slow(self) -> None:
        if self.source is None and not self.closed:
            self.refuse(self._claimed_name(), f"no handshake within {self.owner.hello_timeout:g}s")

    def frame_received(self, kind: int, rid: int, body: Any) -> str | None:
        if self.source is not None:
            if kind == KIND_REQUEST:
                self._dispatch(rid, body)
                return None
            return f"unexpected frame kind {kind} from the dialling side"
        if kind == KIND_HELLO and self._challenge is None:
            self._hello(body)
            return None
        if kind == KIND_PROOF and self._challenge is not None:
            self._proof(body)
            return None
        self.refuse(self._claimed_name(), f"frame kind {kind} before the handshake finished")
        return None

    def _claimed_name(self) -> str | None:
        """The name a peer still handshaking gave in its hello (unproven), if it got that far."""
        return None if self._challenge is None else self._challenge[0]["name"]

    def _hello(self, body: Any) -> None:
        owner = self.owner
        read = hs.read_hello(body)
        if isinstance(read, str):
            self.refuse(None, read)
            return
        hello, nonce_d = read
        name = hello["name"]
        refusal = None if owner._admit is None else owner._admit(hello)
        if refusal is None and owner._tls is not None and self.certificate_name() != name:
            refusal = f"its certificate is for {self.certificate_name()!r}"
        if refusal is not None:
            # Said to the peer (so its operator sees why): none of it depends on the secret.
            self.refuse(name, refusal, tell=refusal)
            return
        if owner._replays.seen(nonce_d, self.loop.time()):
            self.refuse(name, "replayed handshake", tell=_AUTH_FAILED)
            return
        nonce_a = hs.new_nonce()
        self._challenge = (hello, nonce_d, nonce_a)
        cluster = hello.get("cluster") if isinstance(hello.get("cluster"), str) else ""
        proof = hs.accept_proof(owner._key, cluster, name, owner.name, nonce_d, nonce_a)
        self.send_frame(KIND_CHALLENGE, 0, {"name": owner.name, "nonce": nonce_a, "proof": proof})

    def _proof(self, body: Any) -> None:
        owner = self.owner
        assert self._challenge is not None
        hello, nonce_d, nonce_a = self._challenge
        name = hello["name"]
        cluster = hello.get("cluster") if isinstance(hello.get("cluster"), str) else ""
        expected = hs.dial_proof(owner._key, cluster, name, owner.name, nonce_d, nonce_a)
        if not hs.proof_matches(expected, hs.read_proof(body)):
            self.refuse(name, "wrong secret", tell=_AUTH_FAILED)
            return
        owner._replays.remember(nonce_d, self.loop.time())
        self._leave_handshake()
        self.source = name
        self.max_frame = owner.max_frame
        owner.hellos[name] = hello
        if owner._on_hello is not None:
            owner._on_hello(hello)

    def _leave_handshake(self) -> None:
        """No longer counted, nor timed, as a stranger."""
        owner = self.owner
        owner._unauthenticated.discard(self)
        if len(owner._unauthenticated) < owner.max_unauthenticated:
            owner._cap_logged = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def refuse(self, name: str | None, reason: str, *, tell: str | None = None) -> None:
        """Close a link whose handshake failed, logging who tried it and from where.

        `tell` is what the dialler hears: only reasons that owe nothing to the secret.
        """
        who = repr(name) if name is not None else "?"
        log.warning("refused peer %s from %s: %s", who, self.address(), reason)
        if tell is not None:
            self.send_frame(KIND_ERROR, 0, tell)
        self.closed = True
        self._buf = bytearray()
        if self.transport is not None:
            self.transport.close()

    def _dispatch(self, rid: int, body: Any) -> None:
        """Answer one request: at once if the handler returned a value, else from a task.

        Most requests (a replica read) never wait, so they skip the cost of a task;
        a handler that returns an awaitable gets its own task, so one slow request
        does not stall the others on this connection.
        """
        owner = self.owner
        assert owner._handler is not None and self.source is not None
        try:
            result = owner._handler(self.source, body)
        except Exception as exc:
            self._reply_error(rid, exc)
            return
        if inspect.isawaitable(result):
            owner._spawn(self._finish(rid, result))
        else:
            self._reply(rid, result)

    async def _finish(self, rid: int, pending: Awaitable[Any]) -> None:
        try:
            result = await pending
        except Exception as exc:
            self._reply_error(rid, exc)
        else:
            self._reply(rid, result)

    def _reply(self, rid: int, result: Any) -> None:
        payload = self.owner._packer.pack([KIND_REPLY, rid, result])
        if len(payload) > self.max_frame:
            exc = FrameTooLarge(
                f"reply of {len(payload)} bytes exceeds max_frame ({self.max_frame})"
            )
            self._reply_error(rid, exc)
            return
        self._send_reply(payload)

    def _reply_error(self, rid: int, exc: Exception) -> None:
        # The peer gets the reason; the traceback stays here, where the bug is.
        log.error("handler failed on request %d from %s", rid, self.source, exc_info=exc)
        self._send_reply(self.owner._packer.pack([KIND_ERROR, rid, f"{type(exc).__name__}: {exc}"]))

    def _send_reply(self, payload: bytes) -> None:
        transport = self.transport
        # The requester may have gone away meanwhile; its request already failed over there.
        if not self.closed and transport is not None and not transport.is_closing():
            self.send(_pack_header(len(payload)) + payload)

    def protocol_error(self, reason: str) -> None:
        log.warning("closing %s: %s", self.describe(), reason)
        self.closed = True
        self._buf = bytearray()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        # Handlers already running are left to finish (a write may be half done); their
        # replies are discarded. close() is what cancels them.
        self.closed = True
        self._buf = bytearray()
        self._leave_handshake()
        self.owner._inbound.discard(self)


class _Peer:
    """What this node knows about the link to one peer."""

    __slots__ = ("addr", "backoff", "conn", "connecting", "down_until", "last_error", "name")

    def __init__(self, name: str, addr: tuple[str, int], backoff: float) -> None:
        self.name = name
        self.addr = addr
        self.conn: _Outbound | None = None
        # The one in-flight connect attempt, shared by every request that needs it.
        self.connecting: asyncio.Task[_Outbound | str] | None = None
        self.down_until = 0.0
        self.backoff = backoff
        self.last_error = ""


class TcpTransport:
    """Request/reply messaging over TCP (see spinekv.transport.base.Transport).

    Every peer is reached through one persistent, pipelined outbound connection that this node
    dials lazily on the first request; the peer's requests to us arrive on the connection it
    dialled. Message values must be msgpack-able; tuples arrive as lists.
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        peers: Mapping[str, tuple[str, int]],
        *,
        secret: bytes,
        tls: TlsSettings | None = None,
        connect_timeout: float = 1.0,
        backoff_min: float = 0.05,
        backoff_max: float = 2.0,
        max_frame: int = frame_limit(5 * 1024 * 1024),
        hello_timeout: float = 5.0,
        max_unauthenticated: int = 32,
        idle_timeout: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        if not 0 < backoff_min <= backoff_max:
            raise ValueError("need 0 < backoff_min <= backoff_max")
        if not MAX_HANDSHAKE_FRAME <= max_frame < 2**32:
            raise ValueError(
                f"max_frame must be in {MAX_HANDSHAKE_FRAME} .. 2**32 - 1 (4-byte length prefix)"
            )
        if not secret:
            raise ValueError("the peer port never runs without the cluster secret")
        if hello_timeout <= 0 or idle_timeout <= 0 or max_unauthenticated < 1:
            raise ValueError("need hello_timeout > 0, idle_timeout > 0, max_unauthenticated >= 1")
        self.name = name
        self.host = host
        # Becomes the bound port after start() when 0 was asked for.
        self.port = port
        self.connect_timeout = connect_timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.max_frame = max_frame
        self.hello_timeout = hello_timeout
        self.max_unauthenticated = max_unauthenticated
        self.idle_timeout = idle_timeout
        self._key = hs.handshake_key(secret)
        self._tls = tls
        self._server_ssl = (
            None if tls is None else server_context(tls, name, require_client_cert=True)
        )
        self._client_ssl = None if tls is None else client_context(tls, name)
        if self._client_ssl is not None:
            # Peers are named by their certificate's CN (checked against the name we dial),
            # not by the address they listen on.
            self._client_ssl.check_hostname = False
        self._replays = hs.ReplayGuard()
        # Inbound sockets still handshaking; past max_unauthenticated new ones are closed.
        self._unauthenticated: set[_Inbound] = set()
        self._cap_logged = False
        self._sweeper: asyncio.TimerHandle | None = None
        # The reconnect backoff's clock. Deliberately not loop.time(): uvloop caches that per
        # iteration, and is_reachable() may be asked from outside a loop.
        self.monotonic = monotonic
        # Counters for stats and tests: connections accepted from peers / connect attempts made.
        self.accepted = 0
        self.dialled = 0
        self._peers: dict[str, _Peer] = {}
        self._handler: Handler | None = None
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbound: set[_Inbound] = set()
        self._outbound: set[_Outbound] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # One reusable Packer: packb() would build a fresh one per message.
        self._packer = msgpack.Packer(use_bin_type=True)
        self._ids = itertools.count(1)
        self._closed = False
        self._admit: Callable[[dict[str, Any]], str | None] | None = None
        self._on_hello: Callable[[dict[str, Any]], None] | None = None
        # The hello each authenticated peer that dialled us sent, by name (version, address...).
        self.hellos: dict[str, dict[str, Any]] = {}
        self._hello_fields: dict[str, Any] = {"name": name}
        self._cluster = ""
        self.update_peers(peers)

    # -- membership -----------------------------------------------------------------------

    def update_peers(self, peers: Mapping[str, tuple[str, int]]) -> None:
        """Replace the peer table; links to removed or moved peers are dropped."""
        wanted = {
            name: (str(host), int(port))
            for name, (host, port) in peers.items()
            if name != self.name
        }
        for name in list(self._peers):
            if name not in wanted:
                self._forget(self._peers.pop(name), f"peer {name} was removed")
        for name, addr in wanted.items():
            state = self._peers.get(name)
            if state is not None and state.addr == addr:
                continue
            if state is not None:
                self._forget(state, f"peer {name} moved to {addr[0]}:{addr[1]}")
            # A fresh record: an in-flight dial to the old address sees it is stale and gives up.
            self._peers[name] = _Peer(name, addr, self.backoff_min)

    def peers(self) -> dict[str, tuple[str, int]]:
        """The current peer table (without this node)."""
        return {name: state.addr for name, state in self._peers.items()}

    def _forget(self, state: _Peer, reason: str) -> None:
        if state.conn is not None:
            state.conn.drop(reason, mark_down=False)

    # -- serving ----------------------------------------------------------------------------

    async def start(
        self,
        handler: Handler,
        *,
        hello: Mapping[str, Any] | None = None,
        admit: Callable[[dict[str, Any]], str | None] | None = None,
        on_hello: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Listen on (host, port) and answer every authenticated peer's requests with `handler`.

        `hello` adds fields to the hello this node sends first on every link it
        dials (its "cluster" goes into the handshake's proofs); `admit` judges each
        peer's hello (a reason string refuses the link before any request); `on_hello`
        hears each peer once it proved the secret.
        """
        if self._closed:
            raise RuntimeError("transport is closed")
        if self._server is not None:
            raise RuntimeError("transport already started")
        self._handler = handler
        self._hello_fields = {**(hello or {}), "name": self.name}
        cluster = self._hello_fields.get("cluster")
        self._cluster = cluster if isinstance(cluster, str) else ""
        self._admit = admit
        self._on_hello = on_hello
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Inbound(self),
            self.host,
            self.port,
            reuse_address=True,
            ssl=self._server_ssl,
            ssl_handshake_timeout=self.hello_timeout if self._server_ssl else None,
        )
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = self._loop.call_later(self.idle_timeout / 4, self._sweep_idle)

    def _sweep_idle(self) -> None:
        """Close links that carried nothing for idle_timeout (a quarter of it is the grain).

        Our own links close only with nothing pending, and quietly: the peer is not down,
        the next request dials again. A peer's link to us gets twice as long, so the
        dialler, which knows when nothing is in flight, is the one that normally closes.
        """
        assert self._loop is not None
        now = self._loop.time()
        for conn in list(self._outbound):
            if self._idle(conn, now, self.idle_timeout) and not conn.pending:
                log.debug("closing %s: idle", conn.describe())
                conn.drop(f"connection to {conn.peer} closed when idle", mark_down=False)
        for inbound in list(self._inbound):
            if inbound.source is not None and self._idle(inbound, now, 2 * self.idle_timeout):
                log.info("closing %s: idle for %gs", inbound.describe(), 2 * self.idle_timeout)
                inbound.abort()
        self._sweeper = self._loop.call_later(self.idle_timeout / 4, self._sweep_idle)

    @staticmethod
    def _idle(conn: _Connection, now: float, timeout: float) -> bool:
        if conn.active:
            conn.active = False
            conn.idle_since = now
            return False
        return now - conn.idle_since >= timeout

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)  # type: ignore[union-attr]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- requesting -------------------------------------------------------------------------

    async def request(self, peer: str, message: Any, timeout: float) -> Any:
        """Send `message` to `peer` and return its reply.

        Raises Unreachable, RequestTimeout or RemoteError (FrameTooLarge if the message is
        bigger than max_frame); never waits past `timeout`.
        """
        return await self.request_nowait(peer, message, timeout)

    def request_nowait(self, peer: str, message: Any, timeout: float) -> asyncio.Future[Any]:
        """Like request(), but returns the reply's future; no task when the link is up.

        Coordinators fan a request out to several replicas and react to each reply in
        a callback; sparing a task per request is measurable on the GET path.
        """
        loop = asyncio.get_running_loop()
        state = self._peers.get(peer)
        if state is None:
            fut = loop.create_future()
            if peer == self.name:
                fut.set_exception(
                    Unreachable(f"{peer!r} is this node; the transport does not loop back")
                )
            else:
                fut.set_exception(Unreachable(f"no peer named {peer!r}"))
            return fut
        deadline = loop.time() + timeout
        rid = next(self._ids)
        payload = self._packer.pack([KIND_REQUEST, rid, message])
        if len(payload) > self.max_frame:
            fut = loop.create_future()
            fut.set_exception(
                FrameTooLarge(
                    f"request of {len(payload)} bytes exceeds max_frame ({self.max_frame})"
                )
            )
            return fut
        conn = state.conn
        if conn is None or conn.closed or conn.transport.is_closing():  # type: ignore[union-attr]
            return loop.create_task(
                self._send_when_connected(state, rid, payload, deadline, timeout)
            )
        return self._send(conn, peer, rid, payload, deadline, timeout)

    async def _send_when_connected(
        self, state: _Peer, rid: int, payload: bytes, deadline: float, timeout: float
    ) -> Any:
        loop = asyncio.get_running_loop()
        conn = await self._connection(state, loop, deadline, timeout)
        return await self._send(conn, state.name, rid, payload, deadline, timeout)

    def _send(
        self, conn: _Outbound, peer: str, rid: int, payload: bytes, deadline: float, timeout: float
    ) -> asyncio.Future[Any]:
        loop = conn.loop
        fut = loop.create_future()
        if conn.closed:
            # Dropped between its dial and this send (a peer refusing our hello does that).
            fut.set_exception(Unreachable(conn.drop_reason))
            return fut
        pending = conn.pending
        pending[rid] = fut
        timer = loop.call_at(deadline, _expire, fut, peer, timeout)

        def cleanup(_: asyncio.Future[Any]) -> None:
            timer.cancel()
            # Drops the entry on timeout/cancellation so a late reply finds nothing to resolve.
            pending.pop(rid, None)

        fut.add_done_callback(cleanup)
        try:
            conn.send(_pack_header(len(payload)) + payload)
        except (RuntimeError, OSError) as exc:
            # uvloop refuses writes to a transport it has already closed.
            conn.drop(f"connection to {peer} failed: {exc}", mark_down=True)
            if not fut.done():
                fut.set_exception(Unreachable(f"connection to {peer} failed: {exc}"))
        return fut

    async def _connection(
        self, state: _Peer, loop: asyncio.AbstractEventLoop, deadline: float, timeout: float
    ) -> _Outbound:
        """The slow path of request(): get a live connection, dialling if need be."""
        if self._closed:
            raise Unreachable("transport is closed")
        conn = state.conn
        if conn is not None and not conn.closed:
            # uvloop can close a transport (e.g. on ECONNRESET) a little before connection_lost
            # runs; writing to it would raise, so treat the link as dropped right away.
            conn.drop(f"connection to {state.name} closed", mark_down=True)
        task = state.connecting
        if task is None:
            if self.monotonic() < state.down_until:
                raise Unreachable(f"peer {state.name} is down: {state.last_error}")
            task = state.connecting = loop.create_task(self._dial(state))
        if not task.done():
            # asyncio.wait neither cancels the shared dial on timeout nor raises its errors.
            await asyncio.wait((task,), timeout=max(0.0, deadline - loop.time()))
            if not task.done():
                raise RequestTimeout(f"no connection to {state.name} within {timeout:g}s")
        if task.cancelled():
            raise Unreachable("transport is closed")
        result = task.result()
        if isinstance(result, str):
            raise Unreachable(result)
        return result

    async def _dial(self, state: _Peer) -> _Outbound | str:
        """Connect to a peer; returns the connection or why it failed (never raises)."""
        host, port = state.addr
        loop = asyncio.get_running_loop()
        self.dialled += 1
        # Dial from our own address, so a firewall rule on a (from, to) address pair cuts
        # exactly one link; a wildcard listener leaves the choice to the kernel.
        local = None if self.host in ("", "0.0.0.0", "::") else (self.host, 0)
        conn: _Outbound | None = None
        try:
            # The deadline covers the handshake too: a peer that connects but never
            # proves the secret is as unreachable as one that never answers.
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Outbound(self, state.name),
                    host,
                    port,
                    local_addr=local,
                    ssl=self._client_ssl,
                    server_hostname=state.name if self._client_ssl else None,
                )
                await conn.ready
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                step = "connect" if conn is None else "handshake"
                detail = f"{step} timed out after {self.connect_timeout:g}s"
            else:
                detail = f"{type(exc).__name__}: {exc}"
            reason = f"cannot connect to {state.name} at {host}:{port}: {detail}"
            if conn is not None:
                conn.drop(reason, mark_down=False)
            if not self._closed and self._peers.get(state.name) is state:
                self._mark_down(state, reason)
            return reason
        finally:
            state.connecting = None
        if self._closed or self._peers.get(state.name) is not state:
            conn.drop("transport closed or peer changed while connecting", mark_down=False)
            return f"peer {state.name} was closed or changed while connecting"
        if conn.closed:
            # Refused, or the peer failed our checks: down, as any failed dial.
            if self._peers.get(state.name) is state:
                self._mark_down(state, conn.drop_reason)
            return conn.drop_reason
        state.conn = conn
        state.backoff = self.backoff_min
        state.down_until = 0.0
        if state.last_error:
            log.info("reconnected to %s at %s:%d", state.name, host, port)
            state.last_error = ""
        return conn

    def _mark_down(self, state: _Peer, reason: str) -> None:
        delay = state.backoff
        was_up = state.down_until == 0.0 and not state.last_error
        state.down_until = self.monotonic() + delay
        state.last_error = reason
        state.backoff = min(delay * 2, self.backoff_max)
        # Warn on the transition only; repeated failures while down would flood the log.
        level = logging.WARNING if was_up else logging.DEBUG
        log.log(level, "%s (retry in %.2fs)", reason, delay)

    def _outbound_dropped(self, conn: _Outbound, reason: str, mark_down: bool) -> None:
        state = self._peers.get(conn.peer)
        if state is None or state.conn is not conn:
            return
        state.conn = None
        if mark_down and not self._closed:
            self._mark_down(state, reason)

    def is_reachable(self, peer: str) -> bool:
        """False for an unknown peer and while in reconnect backoff; True otherwise."""
        state = self._peers.get(peer)
        if state is None:
            return False
        return self.monotonic() >= state.down_until

    # -- shutdown ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop listening, drop every connection, fail pending requests, cancel handlers."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        server = self._server
        if server is not None:
            server.close()
        waits: list[asyncio.Task[Any]] = []
        for state in self._peers.values():
            if state.connecting is not None:
                state.connecting.cancel()
                waits.append(state.connecting)
        for outbound in list(self._outbound):
            outbound.drop("transport closed", mark_down=False, abort=True)
        for conn in list(self._inbound):
            conn.abort()
        for task in self._tasks:
            task.cancel()
        waits.extend(self._tasks)
        if waits:
            # Bounded: a handler that swallows its cancellation must not hang shutdown.
            await asyncio.wait(waits, timeout=5.0)
        if server is not None:
            await server.wait_closed()
