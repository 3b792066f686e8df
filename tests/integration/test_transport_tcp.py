"""Tests for the TCP transport, over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgpack
import pytest

from spinekv.security.handshake import new_nonce
from spinekv.transport.base import (
    RemoteError,
    RequestTimeout,
    TransportError,
    Unreachable,
)
from spinekv.transport.tcp import MAX_HANDSHAKE_FRAME, FrameTooLarge, TcpTransport
from tests.peer_support import SECRET, frame, handshake, hello, read_frame
from tests.support import eventually

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.1"
LOGGER = "spinekv.transport"


# -- helpers ----------------------------------------------------------------------------------


async def reconnected(a: TcpTransport, message: Any) -> Any:
    """a's reply from b once b listens again (a request fails while a has not reconnected)."""
    return await eventually(
        lambda: a.request("b", message, 1.0),
        what="a to reach b again",
        timeout=5.0,
        not_yet=(TransportError,),
    )


async def echo(source: str, message: Any) -> Any:
    return [source, message]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def pair(
    handler_a: Callable[[str, Any], Awaitable[Any]] = echo,
    handler_b: Callable[[str, Any], Awaitable[Any]] = echo,
    **kwargs: Any,
) -> AsyncIterator[tuple[TcpTransport, TcpTransport]]:
    """Two started transports, "a" and "b", that know each other's (ephemeral) ports."""
    a = TcpTransport("a", HOST, 0, {}, secret=SECRET, **kwargs)
    b = TcpTransport("b", HOST, 0, {}, secret=SECRET, **kwargs)
    try:
        await a.start(handler_a)
        await b.start(handler_b)
        peers = {"a": (HOST, a.port), "b": (HOST, b.port)}
        a.update_peers(peers)
        b.update_peers(peers)
        yield a, b
    finally:
        await a.close()
        await b.close()


async def server_closes(port: int, data: bytes, *, authenticate: bool = False) -> bytes:
    """Send raw bytes to a transport's server (after a good handshake if `authenticate`);
    return what it sent back before closing (the handshake's challenge excluded)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    received = bytearray()
    try:
        if authenticate:
            await handshake(reader, writer, "raw")
        writer.write(data)
        async with asyncio.timeout(3):
            while chunk := await reader.read(65536):
                received += chunk
    except ConnectionResetError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return bytes(received)


# -- scenarios (also run under uvloop below) --------------------------------------------------


async def scenario_roundtrip() -> None:
    async with pair() as (a, b):
        message = {"k": b"\x00\xff", "n": [1, -2, 2**63], 7: None, "s": "héllo"}
        assert await a.request("b", message, 2.0) == ["a", message]
        assert await b.request("a", "ping", 2.0) == ["b", "ping"]
        assert await a.request("b", None, 2.0) == ["a", None]
        assert a.is_reachable("b") and b.is_reachable("a")
        # Each side dialled the other once and accepted the other's connection once.
        assert (a.dialled, a.accepted, b.dialled, b.accepted) == (1, 1, 1, 1)


async def scenario_pipelining() -> None:
    finished: list[int] = []

    async def jittery(source: str, message: Any) -> Any:
        await asyncio.sleep(random.random() * 0.02)
        finished.append(message)
        return message * 2

    async with pair(handler_b=jittery) as (a, b):
        # All 500 are first requests too: they must share one connect attempt.
        results = await asyncio.gather(*(a.request("b", i, 10.0) for i in range(500)))
        assert results == [i * 2 for i in range(500)]
        assert finished != sorted(finished), "replies should have come back out of order"
        assert a.dialled == 1
        assert b.accepted == 1


async def scenario_peer_restart() -> None:
    started = 0
    cancelled = 0

    async def blocking(source: str, message: Any) -> Any:
        nonlocal started, cancelled
        if message == "hang":
            started += 1
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled += 1
                raise
        return message

    async with pair(handler_b=blocking) as (a, b):
        port = b.port
        hung = [asyncio.create_task(a.request("b", "hang", 30.0)) for _ in range(5)]
        await eventually(lambda: started == 5, what="b to run all five handlers")
        t0 = time.monotonic()
        await b.close()
        results = await asyncio.gather(*hung, return_exceptions=True)
        assert all(isinstance(r, Unreachable) for r in results), results
        assert time.monotonic() - t0 < 1.0
        assert cancelled == 5, "close() must cancel running handler tasks"

        b2 = TcpTransport("b", HOST, port, {"a": (HOST, a.port)}, secret=SECRET)
        await b2.start(echo)
        try:
            assert await reconnected(a, "again") == ["a", "again"]
            assert b2.accepted == 1
            assert a.is_reachable("b")
        finally:
            await b2.close()


async def scenario_malformed_input() -> None:
    async with pair(max_frame=1 << 20) as (a, b):
        assert await a.request("b", 1, 2.0) == ["a", 1]
        bad_inputs = [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # ASCII read as a huge length prefix
            struct.pack(">I", MAX_HANDSHAKE_FRAME + 1) + b"x",  # too big before the handshake
            struct.pack(">I", 1) + b"\xc1",  # 0xc1 is never valid msgpack
            struct.pack(">I", 0),  # empty frame
            frame({"kind": 0}),  # valid msgpack, wrong shape
            frame([0, 1]),  # too short
            frame([0, "1", "x"]),  # non-int request id
            frame([0, 1, "x"]),  # request before hello
            frame([3, 0, "z"]),  # hello with a bare name (no nonce)
            frame([3, 0, {"name": "z"}]),  # hello without a nonce
            frame([3, 0, 42]),  # hello without a name
            frame([5, 0, {"proof": b"p" * 32}]),  # proof before hello
            struct.pack(">I", 5) + b"\xdd\xff\xff\xff\xff",  # claims a 4-billion-item array
            bytes(random.Random(7).randrange(256) for _ in range(4096)),
        ]
        challenged = [
            frame([9, 1, None]),  # unknown kind
            frame([1, 1, "x"]),  # a reply sent to the accepting side
            hello("z", new_nonce()),  # second hello
            frame([0, 1, "x"]),  # request before the proof
        ]
        after_auth = [
            frame([9, 1, None]),  # unknown kind
            frame([3, 0, "z"]),  # hello again
            struct.pack(">I", b.max_frame + 1) + b"x",  # over max_frame
        ]
        # (bytes, after a good handshake?, whether a challenge comes back before the close)
        sessions = [(data, False, False) for data in bad_inputs]
        sessions += [(hello("z", new_nonce()) + data, False, True) for data in challenged]
        sessions += [(data, True, False) for data in after_auth]
        for data, authenticate, challenge in sessions:
            reply = await server_closes(b.port, data, authenticate=authenticate)
            if challenge:
                # The hello was good: its challenge came back, and nothing else.
                assert msgpack.unpackb(reply[4:], raw=False)[0] == 4
            else:
                assert reply == b""
            # The node keeps serving its real peers, on the existing connection...
            assert await a.request("b", "still", 2.0) == ["a", "still"]
        # ...and on new ones.
        c = TcpTransport("c", HOST, 0, {"b": (HOST, b.port)}, secret=SECRET)
        try:
            assert await c.request("b", "new", 2.0) == ["c", "new"]
        finally:
            await c.close()
        assert a.dialled == 1


SCENARIOS = {
    "roundtrip": scenario_roundtrip,
    "pipelining": scenario_pipelining,
    "peer_restart": scenario_peer_restart,
    "malformed_input": scenario_malformed_input,
}


async def test_roundtrip_both_directions() -> None:
    await scenario_roundtrip()


async def test_pipelining_500_out_of_order_on_one_connection() -> None:
    await scenario_pipelining()


async def test_peer_restart() -> None:
    await scenario_peer_restart()


async def test_malformed_input_closes_only_that_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await scenario_malformed_input()
    # A failed handshake is logged as "refused peer ...", any other bad input as "closing".
    closing = [
        r
        for r in caplog.records
        if r.name == LOGGER and ("closing" in r.getMessage() or "refused" in r.getMessage())
    ]
    assert len(closing) >= 21


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_under_uvloop(name: str) -> None:
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(SCENARIOS[name]())


# -- further tests ----------------------------------------------------------------------------


async def test_wire_format_with_a_raw_client() -> None:
    seen: list[tuple[str, Any]] = []

    async def record(source: str, message: Any) -> Any:
        seen.append((source, message))
        if message == "fail":
            raise KeyError("nope")
        return {"ok": message}

    async with pair(handler_b=record) as (_, b):
        reader, writer = await asyncio.open_connection(HOST, b.port)
        try:
            await handshake(reader, writer, "raw")
            # Requests may follow the proof at once, pipelined.
            writer.write(frame([0, 41, "x"]) + frame([0, 42, "fail"]))
            replies = {}
            for _ in range(2):
                kind, rid, body = await read_frame(reader)
                replies[rid] = (kind, body)
        finally:
            writer.close()
        assert replies == {41: (1, {"ok": "x"}), 42: (2, "KeyError: 'nope'")}
        assert seen == [("raw", "x"), ("raw", "fail")]


async def test_timeout_then_connection_still_works(caplog: pytest.LogCaptureFixture) -> None:
    replied = asyncio.Event()

    async def slow(source: str, message: Any) -> Any:
        if message == "hang":
            await asyncio.Event().wait()
        if message == "slow":
            await asyncio.sleep(0.2)
            asyncio.get_running_loop().call_soon(replied.set)
        return message

    async with pair(handler_b=slow) as (a, _):
        t0 = time.monotonic()
        with pytest.raises(RequestTimeout):
            await a.request("b", "hang", 0.2)
        elapsed = time.monotonic() - t0
        assert 0.15 <= elapsed < 0.6, elapsed
        assert await a.request("b", "ok", 2.0) == "ok"

        # A reply that arrives after its deadline is dropped silently.
        with caplog.at_level(logging.DEBUG, logger=LOGGER):
            with pytest.raises(RequestTimeout):
                await a.request("b", "slow", 0.05)
            await asyncio.wait_for(replied.wait(), 2.0)
            assert await a.request("b", "after", 2.0) == "after"
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert a._peers["b"].conn is not None and a._peers["b"].conn.pending == {}
        assert a.dialled == 1


async def test_handler_exception_is_a_remote_error(caplog: pytest.LogCaptureFixture) -> None:
    async def picky(source: str, message: Any) -> Any:
        if message == "fail":
            raise ValueError("boom")
        return message

    async with pair(handler_b=picky) as (a, b):
        with (
            caplog.at_level(logging.ERROR, logger=LOGGER),
            pytest.raises(RemoteError, match="ValueError: boom"),
        ):
            await a.request("b", "fail", 2.0)
        assert any(r.name == LOGGER and r.exc_info for r in caplog.records)
        assert await a.request("b", "fine", 2.0) == "fine"
        assert a.dialled == 1 and b.accepted == 1


async def test_unreachable_then_recovers() -> None:
    port = free_port()
    a = TcpTransport(
        "a", HOST, 0, {"a": (HOST, 1), "b": (HOST, port)}, secret=SECRET, backoff_min=0.05
    )
    b = TcpTransport("b", HOST, port, {}, secret=SECRET)
    try:
        assert a.is_reachable("b"), "never tried counts as reachable"
        t0 = time.monotonic()
        with pytest.raises(Unreachable):
            await a.request("b", "x", 5.0)
        assert time.monotonic() - t0 < 1.0
        assert not a.is_reachable("b")
        # In backoff: fails fast without another connect attempt.
        with pytest.raises(Unreachable, match="down"):
            await a.request("b", "x", 5.0)
        assert a.dialled == 1

        await b.start(echo)
        assert await reconnected(a, "x") == ["a", "x"]
        assert a.is_reachable("b")
    finally:
        await a.close()
        await b.close()


async def test_backoff_doubles_caps_and_resets() -> None:
    clock = [1000.0]
    port = free_port()
    a = TcpTransport(
        "a",
        HOST,
        0,
        {"b": (HOST, port)},
        secret=SECRET,
        backoff_min=0.1,
        backoff_max=0.4,
        monotonic=lambda: clock[0],
    )
    b = TcpTransport("b", HOST, port, {}, secret=SECRET)
    try:
        for expected_delay in (0.1, 0.2, 0.4, 0.4):
            dialled = a.dialled
            with pytest.raises(Unreachable):
                await a.request("b", "x", 2.0)
            assert a.dialled == dialled + 1
            clock[0] += expected_delay - 0.01
            assert not a.is_reachable("b")
            with pytest.raises(Unreachable):
                await a.request("b", "x", 2.0)
            assert a.dialled == dialled + 1, "no connect attempt during backoff"
            clock[0] += 0.01
            assert a.is_reachable("b")

        await b.start(echo)
        assert await a.request("b", "x", 2.0) == ["a", "x"]
        # A successful connect resets the backoff: the drop below costs backoff_min only.
        await b.close()
        await eventually(lambda: not a.is_reachable("b"), what="a to see b unreachable")
        clock[0] += 0.1
        assert a.is_reachable("b")
    finally:
        await a.close()
        await b.close()


async def test_close_fails_pending_requests() -> None:
    hanging = 0

    async def hang(source: str, message: Any) -> Any:
        nonlocal hanging
        hanging += 1
        await asyncio.Event().wait()

    async with pair(handler_b=hang) as (a, _):
        pending = [asyncio.create_task(a.request("b", i, 30.0)) for i in range(10)]
        await eventually(lambda: hanging == 10, what="b to run all ten handlers")
        t0 = time.monotonic()
        await a.close()
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(r, Unreachable) for r in results), results
        assert time.monotonic() - t0 < 1.0
        with pytest.raises(Unreachable):
            await a.request("b", "x", 1.0)


async def test_close_while_connecting_fails_waiters() -> None:
    async with pair() as (a, _):
        waiting = asyncio.create_task(a.request("b", "x", 5.0))
        await asyncio.sleep(0)  # let it start the dial
        await a.close()
        with pytest.raises(Unreachable):
            await waiting


async def test_unknown_peer_and_self() -> None:
    async with pair() as (a, _):
        for peer in ("nobody", "a"):
            with pytest.raises(Unreachable):
                await a.request(peer, "x", 1.0)
            assert not a.is_reachable(peer)


async def test_bad_replies_from_a_peer_mark_it_down(caplog: pytest.LogCaptureFixture) -> None:
    hung_up = asyncio.Event()

    async def liar(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(frame([0, 1, "a request, not a reply"]))
        await writer.drain()
        # Stay open: the client is the one that must hang up.
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.close()
        hung_up.set()

    server = await asyncio.start_server(liar, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    a = TcpTransport("a", HOST, 0, {"liar": (HOST, port)}, secret=SECRET)
    try:
        with (
            caplog.at_level(logging.WARNING, logger=LOGGER),
            pytest.raises(Unreachable, match="bad frame"),
        ):
            await a.request("liar", "x", 5.0)
        assert not a.is_reachable("liar")
        # It sent a request where the handshake's challenge belongs.
        assert any(
            "frame kind 0 before the handshake's challenge" in r.getMessage()
            for r in caplog.records
        )
        await asyncio.wait_for(hung_up.wait(), 3.0)
    finally:
        await a.close()
        server.close()
        await server.wait_closed()


async def test_frame_size_limits() -> None:
    async def big(source: str, message: Any) -> Any:
        return b"x" * 16384 if message == "big" else message

    async with pair(handler_b=big, max_frame=8192) as (a, _):
        with pytest.raises(FrameTooLarge):
            await a.request("b", b"y" * 16384, 2.0)
        with pytest.raises(RemoteError, match="FrameTooLarge"):
            await a.request("b", "big", 2.0)
        assert await a.request("b", b"z" * 1000, 2.0) == b"z" * 1000
        assert a.dialled == 1


async def test_large_message_roundtrip() -> None:
    blob = random.Random(1).randbytes(3 * 1024 * 1024)
    async with pair() as (a, _):
        assert await a.request("b", blob, 5.0) == ["a", blob]


async def test_update_peers_add_move_remove() -> None:
    async with pair() as (a, b):
        c = TcpTransport("c", HOST, 0, {}, secret=SECRET)
        await c.start(echo)
        try:
            with pytest.raises(Unreachable):
                await a.request("c", "x", 1.0)
            a.update_peers({"a": (HOST, a.port), "b": (HOST, b.port), "c": (HOST, c.port)})
            assert await a.request("c", "x", 1.0) == ["a", "x"]

            # "b" moves to c's address: the old link is dropped and the new address dialled,
            # where c answers the handshake under its own name and is refused.
            a.update_peers({"b": (HOST, c.port), "c": (HOST, c.port)})
            with pytest.raises(Unreachable, match="it says it is 'c'"):
                await a.request("b", "y", 1.0)
            assert c.accepted == 2
            # "b" restarted on a new port: found there.
            b2 = TcpTransport("b", HOST, 0, {}, secret=SECRET)
            await b2.start(echo)
            try:
                a.update_peers({"b": (HOST, b2.port), "c": (HOST, c.port)})
                assert await a.request("b", "y", 1.0) == ["a", "y"]
                assert b2.accepted == 1
            finally:
                await b2.close()

            a.update_peers({"c": (HOST, c.port)})
            with pytest.raises(Unreachable):
                await a.request("b", "z", 1.0)
            assert a.peers() == {"c": (HOST, c.port)}
        finally:
            await c.close()


async def test_idle_half_frame_client_does_not_block_others() -> None:
    async with pair() as (a, b):
        _, writer = await asyncio.open_connection(HOST, b.port)
        try:
            writer.write(b"\x00\x00")  # half a length prefix, then silence
            await writer.drain()
            assert await a.request("b", "x", 2.0) == ["a", "x"]
        finally:
            writer.close()


async def test_slow_connect_is_shared_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    real_connect = loop.create_connection

    async def slow_connect(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)
        return await real_connect(*args, **kwargs)

    async with pair() as (a, _):
        monkeypatch.setattr(loop, "create_connection", slow_connect)
        patient = asyncio.create_task(a.request("b", "patient", 5.0))
        t0 = time.monotonic()
        # The request deadline covers the connect too.
        with pytest.raises(RequestTimeout):
            await a.request("b", "hasty", 0.1)
        assert time.monotonic() - t0 < 0.28
        assert await patient == ["a", "patient"]
        assert a.dialled == 1, "concurrent first requests share one connect attempt"


async def test_connect_timeout_marks_peer_down(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()

    async def hanging_connect(*args: Any, **kwargs: Any) -> Any:
        await asyncio.Event().wait()

    async with pair(connect_timeout=0.1) as (a, _):
        monkeypatch.setattr(loop, "create_connection", hanging_connect)
        with pytest.raises(Unreachable, match="timed out"):
            await a.request("b", "x", 5.0)
        assert not a.is_reachable("b")


async def test_cancelled_request_leaves_nothing_pending() -> None:
    async def hang(source: str, message: Any) -> Any:
        if message == "hang":
            await asyncio.Event().wait()
        return message

    async with pair(handler_b=hang) as (a, _):
        assert await a.request("b", "warm", 1.0) == "warm"
        task = asyncio.create_task(a.request("b", "hang", 5.0))
        conn = a._peers["b"].conn
        assert conn is not None
        await eventually(lambda: len(conn.pending) == 1, what="the request to be pending")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert conn.pending == {}
        assert await a.request("b", "after", 1.0) == "after"
