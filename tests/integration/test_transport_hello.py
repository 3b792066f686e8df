"""The hello over real TCP: a peer of another cluster or protocol version is refused before
any request, with the reason sent back; an admitted peer's hello is heard with its address."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spinekv.node import messages
from spinekv.transport.base import Unreachable
from spinekv.transport.tcp import TcpTransport
from tests.peer_support import SECRET

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.1"


async def echo(source: str, message: Any) -> Any:
    return [source, message]


@contextlib.asynccontextmanager
async def server(cluster: str, heard: list[dict]) -> AsyncIterator[TcpTransport]:
    """A node of `cluster` that admits hellos by the node's rule and records those it hears."""
    node = TcpTransport("server", HOST, 0, {}, secret=SECRET)
    await node.start(
        echo,
        hello=messages.hello(cluster, HOST, 0),
        admit=functools.partial(messages.hello_refusal, cluster),
        on_hello=heard.append,
    )
    try:
        yield node
    finally:
        await node.close()


async def dial(port: int, hello: dict[str, Any]) -> tuple[TcpTransport, Any]:
    """A client that says `hello` and sends one request; (its transport, reply or error)."""
    client = TcpTransport("client", HOST, 0, {"server": (HOST, port)}, secret=SECRET)
    await client.start(echo, hello=hello)
    try:
        return client, await client.request("server", ["hi"], 5.0)
    except Unreachable as exc:
        return client, exc


async def test_a_peer_of_this_cluster_and_version_is_served_and_heard():
    heard: list[dict] = []
    async with server("spine", heard) as node:
        client, reply = await dial(node.port, messages.hello("spine", HOST, 4242))
        await client.close()
    assert reply == ["client", ["hi"]]
    assert messages.peer_address(heard[0]) == (HOST, 4242)
    assert heard[0]["name"] == "client" and node.hellos["client"] == heard[0]


@pytest.mark.parametrize(
    ("hello", "reason"),
    [
        (messages.hello("other", HOST, 4242), "belongs to cluster 'other', not 'spine'"),
        (
            {**messages.hello("spine", HOST, 4242), "version": messages.PROTOCOL_VERSION + 1},
            "is not supported here",
        ),
        ({}, "no protocol version"),
    ],
)
async def test_a_peer_of_another_cluster_or_version_is_refused_with_the_reason(
    hello, reason, caplog
):
    heard: list[dict] = []
    caplog.set_level(logging.WARNING, logger="spinekv.transport")
    async with server("spine", heard) as node:
        client, reply = await dial(node.port, hello)
        reachable = client.is_reachable("server")
        await client.close()
    assert isinstance(reply, Unreachable), reply
    assert "refused the connection" in str(reply) and reason in str(reply)
    assert not reachable  # the refusal marks the link down, as any failed link
    assert heard == []  # nothing refused is heard, and no request was served
    assert any(
        "refused peer 'client' from 127.0.0.1:" in r.getMessage() and reason in r.getMessage()
        for r in caplog.records
    )
