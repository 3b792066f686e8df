"""Hypothesis against a live peer port: random bytes, random frames, and handshakes cut short,
doubled or reordered never crash it, never reach its handler without the secret, never let a
connection buffer more than the pre-authentication bound, and a good peer is served after."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from spinekv.node import messages
from spinekv.security.handshake import NONCE_BYTES
from spinekv.transport import tcp
from spinekv.transport.tcp import MAX_HANDSHAKE_FRAME, TcpTransport
from tests.peer_support import SECRET, frame, handshake, hello

HOST = "127.0.0.1"
# A frame's 4-byte length prefix: what may sit in the buffer beside a partial frame.
PRE_AUTH_BOUND = MAX_HANDSHAKE_FRAME + 4

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.binary(max_size=64),
    st.text(max_size=16),
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
names = st.sampled_from(["a", "b", "", "z" * 40])
nonces = st.binary(min_size=NONCE_BYTES, max_size=NONCE_BYTES) | st.binary(max_size=40)
handshake_frames = st.one_of(
    st.builds(lambda n, nonce: hello(n, nonce, **messages.hello("fuzz", HOST, 1)), names, nonces),
    st.builds(lambda p: frame([5, 0, {"proof": p}]), st.binary(max_size=40)),
    st.builds(lambda n, p: frame([4, 0, {"name": n, "nonce": p, "proof": p}]), names, nonces),
    st.builds(lambda rid, v: frame([0, rid, v]), st.integers(0, 5), values),
    st.builds(lambda k, rid, v: frame([k, rid, v]), st.integers(-2, 9), st.integers(-1, 5), values),
    st.builds(lambda v: frame(v), values),
    st.builds(lambda n: (n).to_bytes(4, "big"), st.integers(0, 2**32 - 1)),
)
chunks = st.lists(
    st.one_of(
        handshake_frames,
        st.binary(min_size=1, max_size=512),
        # A length prefix past the pre-authentication cap, and the start of what it claims.
        st.builds(
            lambda size, n: size.to_bytes(4, "big") + bytes(n),
            st.integers(MAX_HANDSHAKE_FRAME + 1, 2**32 - 1),
            st.integers(0, 3 * MAX_HANDSHAKE_FRAME),
        ),
        # A frame cut short: a prefix of a well-formed one.
        st.builds(lambda f, cut: f[: max(1, cut % len(f))], handshake_frames, st.integers(0, 99)),
    ),
    min_size=1,
    max_size=6,
)


@contextlib.contextmanager
def buffer_watch() -> Any:
    """Record (authenticated?, buffered bytes) after every read of every inbound link."""
    seen: list[tuple[bool, int]] = []
    original = tcp._Inbound.data_received

    def watched(self: tcp._Inbound, data: bytes) -> None:
        original(self, data)
        seen.append((self.source is not None, len(self._buf)))

    tcp._Inbound.data_received = watched  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        tcp._Inbound.data_received = original  # type: ignore[method-assign]


async def attack(
    parts: list[bytes], authenticate: bool
) -> tuple[list[Any], list[tuple[bool, int]]]:
    served: list[Any] = []

    def record(source: str, message: Any) -> Any:
        served.append((source, message))
        return message

    with buffer_watch() as buffered:
        b = TcpTransport("b", HOST, 0, {}, secret=SECRET)
        await b.start(record, hello=messages.hello("fuzz", HOST, 1))
        try:
            reader, writer = await asyncio.open_connection(HOST, b.port)
            try:
                if authenticate:
                    await handshake(reader, writer, "a", cluster="fuzz")
                for part in parts:
                    writer.write(part)
                    await writer.drain()
                    await asyncio.sleep(0)
            except ConnectionError:
                pass  # the node hung up on us: allowed
            finally:
                writer.close()
            # The listener still serves a good peer, whatever came before.
            good = TcpTransport("good", HOST, 0, {"b": (HOST, b.port)}, secret=SECRET)
            await good.start(record, hello=messages.hello("fuzz", HOST, 1))
            try:
                assert await good.request("b", "after", 5.0) == "after"
            finally:
                await good.close()
        finally:
            await b.close()
    return served, buffered


@settings(max_examples=60, deadline=None)
@given(chunks)
def test_a_stranger_never_reaches_the_handler_nor_buffers_past_the_bound(parts):
    served, buffered = asyncio.run(attack(parts, authenticate=False))
    assert [s for s, _ in served] == ["good"]
    assert all(size <= PRE_AUTH_BOUND for authenticated, size in buffered if not authenticated)


@settings(max_examples=40, deadline=None)
@given(chunks)
def test_an_authenticated_peer_sending_garbage_harms_nothing_but_its_link(parts):
    served, buffered = asyncio.run(attack(parts, authenticate=True))
    assert served[-1] == ("good", "after")
    assert all(size <= tcp.frame_limit(5 * 1024 * 1024) + 4 for _, size in buffered)
