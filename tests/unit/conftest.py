"""Fixtures for the HTTP tests: an in-process five-node cluster and an HTTP session."""

from __future__ import annotations

import aiohttp
import pytest

from tests.inproc import inproc_cluster


@pytest.fixture
async def cluster(tmp_path):
    """Five nodes in this event loop (tests/inproc.py); a module may override it."""
    async with inproc_cluster(tmp_path) as c:
        yield c


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session
