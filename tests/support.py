"""Shared test helpers: polling for a state, injected faults, free ports, cluster.toml files."""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from spinekv.config import load_config
from spinekv.security.secrets import make_cluster_secret
from spinekv.storage.memory import MemoryBackend
from spinekv.transport.base import Handler
from spinekv.transport.tcp import TcpTransport

NotYet = tuple[type[BaseException], ...]


def _passed(
    value: Any, error: BaseException | None, what: str, timeout: float, deadline: float
) -> bool:
    """Whether a check passed; past the deadline a failure naming `what` and the last outcome."""
    if error is None and value:
        return True
    if time.monotonic() > deadline:
        last = error if error is not None else value
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}; last: {last!r}"
        ) from error
    return False


async def eventually(
    check: Callable[[], Any],
    *,
    what: str,
    timeout: float = 10.0,
    interval: float = 0.02,
    not_yet: NotYet = (AssertionError,),
) -> Any:
    """Call `check` (sync or async) until it returns something truthy, and return that.

    A check that raises one of `not_yet` (a failed assertion, by default) has not passed
    either, so an assertion-style check ends by returning what it checked. At the deadline
    this fails naming `what` and the last error or value, chained to the last error.
    """
    deadline = time.monotonic() + timeout
    while True:
        value, error = None, None
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except not_yet as exc:
            error = exc
        if _passed(value, error, what, timeout, deadline):
            return value
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], Any],
    *,
    what: str,
    timeout: float = 20.0,
    interval: float = 0.05,
    not_yet: NotYet = (AssertionError,),
) -> Any:
    """`eventually` for blocking tests (real node processes): the same rules, `time.sleep`."""
    deadline = time.monotonic() + timeout
    while True:
        value, error = None, None
        try:
            value = check()
        except not_yet as exc:
            error = exc
        if _passed(value, error, what, timeout, deadline):
            return value
        time.sleep(interval)


class PausableTransport(TcpTransport):
    """A TcpTransport whose node can fall silent, as under SIGSTOP: its connections stay open
    and peers' requests reach it, but no answer goes back until `resume()`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._running = asyncio.Event()
        self._running.set()

    async def start(self, handler: Handler, **hello: Any) -> None:
        async def after_resume(source: str, message: Any) -> Any:
            await self._running.wait()
            answer = handler(source, message)
            return await answer if inspect.isawaitable(answer) else answer

        def when_running(source: str, message: Any) -> Any:
            # Running, the handler answers exactly as it would without this subclass.
            if self._running.is_set():
                return handler(source, message)
            return after_resume(source, message)

        await super().start(when_running, **hello)  # the hello, admit and on_hello arguments

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()


class FailingBackend(MemoryBackend):
    """A MemoryBackend whose 2i scans over index entries containing `term` fail, as a bad
    disk read would; every other read and write works."""

    def __init__(self, term: bytes) -> None:
        super().__init__()
        self.term = term

    def scan(
        self, partition: int, low: bytes, high: bytes, *, index: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        if index and self.term in low:
            raise OSError(f"read error in the index of partition {partition}")
        return super().scan(partition, low, high, index=index)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _worker_ports(low: int, high: int) -> tuple[int, int]:
    """This pytest-xdist worker's own slice of [low, high): a port is free when chosen but
    taken only when a node binds it, and another worker could choose it in between."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or workers < 2:
        return low, high
    index = int(worker[2:]) % workers
    width = (high - low) // workers
    return low + index * width, low + (index + 1) * width


def free_ports(count: int) -> list[int]:
    """Distinct ports that are free now, held open together while they are chosen.

    They come from below the kernel's ephemeral range: a port from inside it (port 0)
    can be taken, before a node listens on it, as the source port of another node's
    outgoing connection, and the node then fails with EADDRINUSE.
    """
    start, stop = _worker_ports(1024, max(_ephemeral_low(), 2048))
    socks: list[socket.socket] = []
    try:
        while len(socks) < count:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", random.randrange(start, stop)))
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
        "[bucket_types.siblings]",
        "",
        # As the shipped cluster.toml: loopback is trusted as `local`, which may do
        # anything but reach the record API's bucket type raw.
        "[[source]]",
        'cidr = "127.0.0.1/32"',
        'method = "trust"',
        'user = "local"',
        "",
        "[[user]]",
        'name = "local"',
        'grants = [{ on = "any", permissions = '
        '["get", "put", "delete", "list", "index", "props", "admin"] }]',
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
    make_cluster_secret(load_config(path).secret_file)
    return path
