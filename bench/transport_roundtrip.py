"""Micro-benchmark: TcpTransport request/reply round trips per second over one connection."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import time
from typing import Any

from spinekv.transport.tcp import TcpTransport

HOST = "127.0.0.1"


def _use_uvloop(wanted: bool) -> str:
    if wanted:
        try:
            import uvloop
        except ImportError:
            return "asyncio (uvloop not installed)"
        uvloop.install()
        return f"uvloop {uvloop.__version__}"
    return "asyncio"


# Both ends of the benchmark share it; the handshake runs once, before the clock starts.
SECRET = b"bench-secret-0123456789abcdef"


async def _echo(source: str, message: Any) -> Any:
    return message


async def _serve_forever(port: int, ready: Any) -> None:
    server = TcpTransport("server", HOST, port, {}, secret=SECRET)
    await server.start(_echo)
    ready.set()
    await asyncio.Event().wait()


def _server_process(port: int, ready: Any, uvloop: bool) -> None:
    _use_uvloop(uvloop)
    asyncio.run(_serve_forever(port, ready))


async def _client(port: int, size: int, outstanding: int, seconds: float) -> tuple[int, float]:
    client = TcpTransport("client", HOST, 0, {"server": (HOST, port)}, secret=SECRET)
    payload = b"x" * size
    try:
        # Warm up: establish the connection before the clock starts.
        await client.request("server", payload, 5.0)
        done = 0
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                await client.request("server", payload, 5.0)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(outstanding)))
        return done, time.perf_counter() - started
    finally:
        await client.close()


async def _in_process(size: int, outstanding: int, seconds: float) -> tuple[int, float]:
    server = TcpTransport("server", HOST, 0, {}, secret=SECRET)
    await server.start(_echo)
    try:
        return await _client(server.port, size, outstanding, seconds)
    finally:
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024, help="payload bytes (default 1024)")
    parser.add_argument("--outstanding", type=int, default=64, help="concurrent requests")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument(
        "--server-process",
        action="store_true",
        help="run the replying side in a separate process (default: both in one event loop)",
    )
    args = parser.parse_args()
    loop_name = _use_uvloop(not args.no_uvloop)

    if args.server_process:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        ready = multiprocessing.Event()
        proc = multiprocessing.Process(
            target=_server_process, args=(port, ready, not args.no_uvloop), daemon=True
        )
        proc.start()
        try:
            if not ready.wait(10):
                raise SystemExit("server process did not start")
            done, elapsed = asyncio.run(_client(port, args.size, args.outstanding, args.seconds))
        finally:
            proc.terminate()
            proc.join()
        where = "server in a separate process"
    else:
        done, elapsed = asyncio.run(_in_process(args.size, args.outstanding, args.seconds))
        where = "client and server in one process"

    print(
        f"{done / elapsed:,.0f} round trips/s  ({done} in {elapsed:.2f}s; "
        f"{args.size} B payload, {args.outstanding} outstanding, one connection, "
        f"{loop_name}, {where})"
    )


if __name__ == "__main__":
    main()
