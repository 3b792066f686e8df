"""Group commit: many callers waiting for durability share one fsync run off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


class GroupSync:
    """`await flush()` returns once every write made before the call is on disk.

    A flush that arrives while an fsync is running cannot be covered by it (its
    write may have landed after the fsync began), so it joins the next round;
    all flushes that pile up meanwhile share that round.
    """

    def __init__(self, sync_now: Callable[[], None]) -> None:
        self._sync_now = sync_now
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fsync")
        self._waiting: asyncio.Future[None] | None = None
        self._busy = False

    async def flush(self) -> None:
        if self._waiting is None:
            self._waiting = asyncio.get_running_loop().create_future()
            round_ = self._waiting
            if not self._busy:
                self._launch()
        else:
            round_ = self._waiting
        await asyncio.shield(round_)

    def _launch(self) -> None:
        round_, self._waiting = self._waiting, None
        assert round_ is not None
        self._busy = True
        running = asyncio.get_running_loop().run_in_executor(self._pool, self._sync_now)
        running.add_done_callback(lambda done: self._finished(round_, done))

    def _finished(self, round_: asyncio.Future[None], done: asyncio.Future[None]) -> None:
        self._busy = False
        exc = done.exception()
        if exc is None:
            round_.set_result(None)
        else:
            round_.set_exception(exc)
        if self._waiting is not None:
            self._launch()

    def close(self) -> None:
        """Wait for a running fsync to finish; later flushes are not possible."""
        self._pool.shutdown(wait=True)
