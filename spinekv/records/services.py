"""One node's record layer: the record store and the domain services over it, built once."""

from __future__ import annotations

import asyncio

from ..config import ClusterConfig
from .pds import Demographics
from .store import RecordStore


class RecordServices:
    """What the record API's routes share on one node (PDS, SCR and trace use one store)."""

    def __init__(self, config: ClusterConfig, store: RecordStore) -> None:
        self.config = config
        self.store = store
        self.demographics = Demographics(store, config.records)
        # Writes being served on this node, by request id: a duplicate waits for the first.
        self.in_flight: dict[str, asyncio.Future] = {}
