"""Fixtures for the HTTP tests: an in-process five-node cluster and an HTTP session."""

from __future__ import annotations

import aiohttp
import pytest

from tests.inproc import inproc_cluster
from tests.records_support import USERS_TOML, RecordClient


@pytest.fixture
async def cluster(tmp_path):
    """Five nodes in this event loop (tests/inproc.py); a module may override it."""
    async with inproc_cluster(tmp_path) as c:
        yield c


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.fixture
async def records_cluster(tmp_path):
    """Five in-process nodes whose cluster.toml lists a user per role (tests/records_support.py)."""
    async with inproc_cluster(tmp_path, extra=USERS_TOML) as c:
        yield c


@pytest.fixture
async def api(records_cluster, http):
    """A RecordClient on n1 of `records_cluster`; pass base_url= to call another node."""
    return RecordClient(http, records_cluster.url("n1"))
