"""Group commit: durability waiters share fsyncs, and none returns before its write is covered."""

from __future__ import annotations

import asyncio
import threading

import pytest

from spinekv.storage.groupsync import GroupSync
from spinekv.storage.leveldb import LevelDBBackend


async def test_concurrent_flushes_share_rounds_and_cover_earlier_writes():
    written = []  # writes "on disk": the state seen when each fsync began
    log = []
    gate = threading.Event()

    def fsync():
        log.append(list(written))
        gate.wait(5)

    group = GroupSync(fsync)
    written.append(1)
    first = asyncio.ensure_future(group.flush())
    await asyncio.sleep(0.05)  # the first fsync is now running, blocked on the gate
    written.append(2)
    later = [asyncio.ensure_future(group.flush()) for _ in range(10)]
    await asyncio.sleep(0.05)
    assert not first.done() and not any(f.done() for f in later)
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, *later), 5)
    # One fsync for the first caller, one shared by the ten that came during it, and the
    # shared one began after write 2 was made, so it covers it.
    assert log == [[1], [1, 2]]
    group.close()


async def test_fsync_error_reaches_every_waiter():
    def fail():
        raise OSError("disk full")

    group = GroupSync(fail)
    results = await asyncio.gather(group.flush(), group.flush(), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    group.close()


async def test_leveldb_flush(tmp_path):
    backend = LevelDBBackend(tmp_path / "d")
    backend.put(1, b"k", b"v")
    await asyncio.gather(*(backend.flush() for _ in range(20)))
    assert backend.get(1, b"k") == b"v"
    backend.close()


@pytest.mark.parametrize("n", [1, 3])
async def test_flushed_writes_survive_reopen(tmp_path, n):
    backend = LevelDBBackend(tmp_path / f"d{n}")
    for i in range(n):
        backend.put(0, b"k%d" % i, b"v")
        await backend.flush()
    backend.close()
    again = LevelDBBackend(tmp_path / f"d{n}")
    assert again.get(0, b"k0") == b"v"
    again.close()
