"""The benchmark ceiling: one aiohttp process over one plyvel LevelDB, no replication."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import plyvel
import uvloop
from aiohttp import web


def make_app(
    db: plyvel.DB, *, sync: bool = False, max_size: int = 5 * 1024 * 1024
) -> web.Application:
    """The bare app: the node's URL shapes, one LevelDB get or put (fsync'd if `sync`) each."""

    async def get(request: web.Request) -> web.Response:
        info = request.match_info
        value = db.get(f"{info['bucket']}/{info['key']}".encode())
        if value is None:
            return web.Response(status=404, text="not found\n")
        return web.Response(body=value, content_type="application/octet-stream")

    async def put(request: web.Request) -> web.Response:
        info = request.match_info
        body = await request.read()
        db.put(f"{info['bucket']}/{info['key']}".encode(), body, sync=sync)
        return web.Response(status=204)

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="OK")

    app = web.Application(client_max_size=max_size + 1)
    app.add_routes(
        [
            web.get("/ping", ping),
            web.get("/buckets/{bucket}/keys/{key}", get),
            web.put("/buckets/{bucket}/keys/{key}", put),
        ]
    )
    return app


async def serve(host: str, port: int, data: Path, *, sync: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, the way a spinekv node runs (AppRunner, no access log)."""
    data.mkdir(parents=True, exist_ok=True)
    db = plyvel.DB(str(data), create_if_missing=True, lru_cache_size=64 * 1024 * 1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(make_app(db, sync=sync), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        await stop.wait()
    finally:
        await runner.cleanup()
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True, help="LevelDB directory")
    parser.add_argument(
        "--sync", action="store_true", help="fsync every put (as spinekv does when dw > 0)"
    )
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.data, sync=args.sync))


if __name__ == "__main__":
    main()
