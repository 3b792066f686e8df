"""The peer port's attacks over real TCP: each one fails, and good peers are served as before.

A spoofed hello (a member's name without the secret), a replayed handshake, a ring
pushed from an unauthenticated socket, a huge frame header, a socket that never
speaks, a flood of such sockets, and a certificate for another name under mutual TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from spinekv.node import messages
from spinekv.security.handshake import new_nonce
from spinekv.transport.base import Unreachable
from spinekv.transport.tcp import MAX_HANDSHAKE_FRAME, TcpTransport
from tests.inproc import inproc_cluster
from tests.peer_support import (
    KIND_CHALLENGE,
    KIND_ERROR,
    KIND_HELLO,
    SECRET,
    frame,
    handshake,
    hello,
    make_certificates,
    read_frame,
)
from tests.support import eventually

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.1"
LOGGER = "spinekv.transport"


@contextlib.asynccontextmanager
async def serving(**kwargs: Any) -> AsyncIterator[tuple[TcpTransport, list[tuple[str, Any]]]]:
    """A transport "b" that records every request its handler is given."""
    seen: list[tuple[str, Any]] = []

    async def record(source: str, message: Any) -> Any:
        seen.append((source, message))
        return [source, message]

    b = TcpTransport("b", HOST, 0, {}, **{"secret": SECRET, **kwargs})
    await b.start(record)
    try:
        yield b, seen
    finally:
        await b.close()


async def closed_by_server(reader: asyncio.StreamReader, within: float = 3.0) -> bytes:
    """Everything the server sends until it closes the socket (fails if it does not)."""
    received = bytearray()
    async with asyncio.timeout(within):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                received += chunk
    return bytes(received)


async def dial_as(
    name: str,
    port: int,
    secret: bytes,
    *,
    says: dict[str, Any] | None = None,
    message: Any = "hi",
    target: str = "b",
    **kwargs: Any,
) -> Any:
    """One request from a transport called `name` holding `secret` (its hello `says` more):
    the reply or the error."""
    peer = TcpTransport(name, HOST, 0, {target: (HOST, port)}, secret=secret, **kwargs)
    if says is not None:
        await peer.start(lambda source, message: message, hello=says)
    try:
        return await peer.request(target, message, 2.0)
    except Unreachable as exc:
        return exc
    finally:
        await peer.close()


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refused peer" in r.getMessage()]


async def test_a_member_with_the_secret_is_served():
    async with serving() as (b, seen):
        assert await dial_as("a", b.port, SECRET) == ["a", "hi"]
        assert seen == [("a", "hi")] and "a" in b.hellos


async def test_a_spoofed_hello_with_a_wrong_secret_is_closed_logged_and_never_served(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with serving() as (b, seen):
        reply = await dial_as("a", b.port, b"not-the-cluster-secret-0123456789")
        assert isinstance(reply, Unreachable)
        # The dialler checks the acceptor's proof first: it never sends its own.
        assert "does not hold the cluster secret" in str(reply)
        assert seen == [] and b.hellos == {}


async def test_a_spoofed_hello_without_the_secret_never_reaches_the_handler(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with serving() as (b, seen):
        reader, writer = await asyncio.open_connection(HOST, b.port)
        # The member's name and a request straight after the hello, then a made-up proof.
        writer.write(hello("a", new_nonce()) + frame([0, 1, "read everything"]))
        kind, rid, _ = await read_frame(reader)
        assert (kind, rid) == (KIND_CHALLENGE, 0)
        assert await closed_by_server(reader) == b""
        writer.close()

        reader, writer = await asyncio.open_connection(HOST, b.port)
        writer.write(hello("a", new_nonce()))
        await read_frame(reader)
        writer.write(frame([5, 0, {"proof": b"\0" * 32}]) + frame([0, 2, "write"]))
        # The dialler hears only that it failed, never why.
        assert await closed_by_server(reader) == frame([KIND_ERROR, 0, "authentication failed"])
        writer.close()
        assert seen == []
    logged = refusals(caplog)
    assert any(m.startswith("refused peer 'a' from 127.0.0.1:") for m in logged), logged
    assert any(m.endswith(": wrong secret") for m in logged), logged


async def test_a_replayed_handshake_is_refused(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with serving() as (b, seen):
        reader, writer = await asyncio.open_connection(HOST, b.port)
        recorded = await handshake(reader, writer, "a")
        writer.write(frame([0, 1, "first"]))
        assert (await read_frame(reader))[2] == ["a", "first"]
        writer.close()

        reader, writer = await asyncio.open_connection(HOST, b.port)
        writer.write(recorded + frame([0, 2, "replayed"]))
        assert await closed_by_server(reader) == frame([KIND_ERROR, 0, "authentication failed"])
        writer.close()
        assert seen == [("a", "first")]
    assert any(m.endswith(": replayed handshake") for m in refusals(caplog))


async def test_a_huge_frame_header_is_refused_at_once_and_buffers_nothing(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with serving() as (b, seen):
        for authenticate in (False, True):
            reader, writer = await asyncio.open_connection(HOST, b.port)
            if authenticate:
                await handshake(reader, writer, "a")
            writer.write(struct.pack(">I", 64 * 1024 * 1024) + b"x" * 60_000)
            await closed_by_server(reader, within=1.0)
            writer.close()
            assert all(len(conn._buf) <= MAX_HANDSHAKE_FRAME for conn in b._inbound)
        assert b.max_frame < 64 * 1024 * 1024
        assert seen == []
        assert await dial_as("a", b.port, SECRET) == ["a", "hi"]


async def test_a_socket_that_never_says_hello_is_closed_after_the_deadline(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with serving(hello_timeout=0.3) as (b, _):
        reader, writer = await asyncio.open_connection(HOST, b.port)
        writer.write(b"\0\0")  # half a header, then silence
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await closed_by_server(reader) == b""
        assert loop.time() - started >= 0.25
        writer.close()
        assert not b._unauthenticated
    assert any("no handshake within 0.3s" in m for m in refusals(caplog))


async def test_the_cap_on_unauthenticated_sockets_holds(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with serving(max_unauthenticated=3) as (b, seen):
        silent = [await asyncio.open_connection(HOST, b.port) for _ in range(3)]
        await eventually(lambda: len(b._unauthenticated) == 3, what="three sockets handshaking")
        for _ in range(5):
            reader, writer = await asyncio.open_connection(HOST, b.port)
            assert await closed_by_server(reader, within=1.0) == b""
            writer.close()
        assert len(b._unauthenticated) == 3
        # Once per burst, not once per socket.
        assert sum("max_unauthenticated_peers" in r.getMessage() for r in caplog.records) == 1
        for _, writer in silent:
            writer.close()
        await eventually(lambda: not b._unauthenticated, what="the silent sockets to go")
        assert await dial_as("a", b.port, SECRET) == ["a", "hi"]
        assert seen == [("a", "hi")]


async def test_an_idle_link_closes_quietly_and_the_next_request_dials_again():
    async with serving(idle_timeout=0.2) as (b, _):
        a = TcpTransport("a", HOST, 0, {"b": (HOST, b.port)}, secret=SECRET, idle_timeout=0.2)
        await a.start(lambda source, message: message)
        try:
            assert await a.request("b", 1, 2.0) == ["a", 1]
            await eventually(lambda: a._peers["b"].conn is None, what="the idle link to close")
            assert a.is_reachable("b"), "an idle close is not a peer going down"
            assert await a.request("b", 2, 2.0) == ["a", 2]
            assert a.dialled == 2
        finally:
            await a.close()


async def test_mutual_tls_refuses_a_certificate_for_another_name(tmp_path: Path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    tls = make_certificates(tmp_path, ["a", "b", "c"])
    async with serving(tls=tls) as (b, seen):
        assert await dial_as("a", b.port, SECRET, tls=tls) == ["a", "hi"]
        # "c" holds a good certificate (and the secret) but says it is "a".
        as_c = dataclasses.replace(tls, cert="c.pem", key="c.key")
        reply = await dial_as("a", b.port, SECRET, tls=as_c)
        assert isinstance(reply, Unreachable) and "certificate is for 'c'" in str(reply)
        # A dialler without TLS never gets as far as a hello.
        reply = await dial_as("a", b.port, SECRET)
        assert isinstance(reply, Unreachable)
        assert seen == [("a", "hi")]
    assert any("its certificate is for 'c'" in m for m in refusals(caplog))


async def test_the_dialler_refuses_a_listener_whose_certificate_names_another(tmp_path: Path):
    tls = make_certificates(tmp_path, ["a", "b", "c"])
    c = TcpTransport("c", HOST, 0, {}, secret=SECRET, tls=tls)
    await c.start(lambda source, message: message)
    try:
        reply = await dial_as("a", c.port, SECRET, tls=tls)  # a thinks it dials "b"
        assert isinstance(reply, Unreachable) and "certificate is for 'c'" in str(reply)
    finally:
        await c.close()


async def test_a_ring_pushed_from_an_unauthenticated_socket_changes_no_node(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with inproc_cluster(tmp_path, 3, ring_size=8) as cluster:
        n1 = cluster.nodes["n1"]
        state = n1.membership.state
        forged = dataclasses.replace(state, epoch=state.epoch + 1000)
        n1.membership.state = forged
        gossip = messages.Gossip(n1.membership._frame()).to_wire()
        n1.membership.state = state
        port = cluster.config.node("n2").peer_port
        says = messages.hello(cluster.config.name, HOST, 1)

        for opening in (
            frame([0, 1, gossip]),  # no hello at all
            hello("n1", new_nonce(), **says) + frame([0, 1, gossip]),  # a member's name, no proof
        ):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(opening)
            await closed_by_server(reader)
            writer.close()
        # A stranger's name, even with the secret, is refused before any proof.
        secret = cluster.nodes["n2"].secret
        reply = await dial_as("mallory", port, secret, says=says, message=gossip, target="n2")
        assert isinstance(reply, Unreachable) and "unknown node 'mallory'" in str(reply)
        # A member that proves the secret is served as ever.
        ping = messages.Ping().to_wire()
        assert await dial_as("n1", port, secret, says=says, message=ping, target="n2") == "pong"
        assert all(n.membership.state.epoch == state.epoch for n in cluster.nodes.values())
    logged = refusals(caplog)
    assert any("unknown node 'mallory'" in m for m in logged), logged
    assert any(m.startswith("refused peer 'n1' from 127.0.0.1:") for m in logged), logged


async def test_a_listener_that_never_challenges_is_given_nothing():
    heard = bytearray()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                heard.extend(chunk)
        writer.close()

    server = await asyncio.start_server(mute, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reply = await dial_as("a", port, SECRET, connect_timeout=0.3)
        assert isinstance(reply, Unreachable) and "handshake timed out" in str(reply)
        # Our hello went out; no proof and no request ever did.
        (size,) = struct.unpack(">I", heard[:4])
        assert len(heard) == 4 + size
        assert msgpack.unpackb(bytes(heard[4:]), raw=False)[0] == KIND_HELLO
    finally:
        server.close()
        await server.wait_closed()
