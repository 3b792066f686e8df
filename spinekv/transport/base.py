"""The Transport interface: request/reply messaging between nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol

# A handler receives (source node name, message) and returns the reply message, or an
# awaitable of it when it must wait. Messages are plain msgpack-able values.
Handler = Callable[[str, Any], Any]


class TransportError(Exception):
    """A request to a peer did not produce a reply."""


class Unreachable(TransportError):
    """The peer cannot be connected to, or the connection dropped mid-request."""


class RequestTimeout(TransportError):
    """The peer did not reply within the request's timeout."""


class RemoteError(TransportError):
    """The peer's handler failed; the message carries its reason."""


class Transport(Protocol):
    """Request/reply messaging to named peers; one implementation per network kind."""

    name: str

    async def start(
        self,
        handler: Handler,
        *,
        hello: Mapping[str, Any] | None = None,
        admit: Callable[[dict[str, Any]], str | None] | None = None,
        on_hello: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Begin accepting requests from peers, answering each with `handler`.

        Peers introduce themselves with a hello (a map with their "name" and the
        `hello` fields they were started with) before any request; `admit` returns
        a reason to refuse one, and `on_hello` hears each peer admitted.
        """

    async def request(self, peer: str, message: Any, timeout: float) -> Any:
        """Send `message` to `peer` and return its reply.

        Raises Unreachable, RequestTimeout or RemoteError; never waits past `timeout`.
        """

    def request_nowait(self, peer: str, message: Any, timeout: float) -> asyncio.Future[Any]:
        """request(), returning the reply's future; errors arrive through the future."""

    def is_reachable(self, peer: str) -> bool:
        """False while the link to `peer` is known broken (in reconnect backoff)."""

    async def close(self) -> None:
        """Stop listening and drop every connection; pending requests fail."""
