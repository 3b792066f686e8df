"""Chaos fixtures: a five-node cluster on 127.0.0.11-15, torn down whatever happens."""

from __future__ import annotations

import pytest

from .harness import running_cluster


@pytest.fixture
def chaos_cluster(tmp_path):
    """(cluster, firewall); afterwards every node pid is SIGCONTed and SIGKILLed, the table gone."""
    with running_cluster(tmp_path / "cluster") as pair:
        yield pair
