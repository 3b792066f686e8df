"""One node's record layer: the record store and the domain services over it, built once."""

from __future__ import annotations

import asyncio

from ..config import ClusterConfig
from .audit import AuditLog
from .pds import BUCKET as PATIENTS
from .pds import Demographics
from .scr.service import SCR_BUCKET, STATE_BUCKET, ScrService
from .store import RecordStore

# The buckets whose records carry a MAC, and what a record of each is called in errors.
SEALED = {PATIENTS: "Patient", SCR_BUCKET: "SCR", STATE_BUCKET: "SCR consent of patient"}


class RecordServices:
    """What the record API's routes share on one node (PDS, SCR and trace use one store)."""

    def __init__(self, config: ClusterConfig, store: RecordStore, audit: AuditLog) -> None:
        self.config = config
        self.store = store
        self.audit = audit
        self.demographics = Demographics(store, config.records, audit=audit)
        self.scr = ScrService(store, self.demographics, audit)
        # Writes being served on this node, by request id: a duplicate waits for the first.
        self.in_flight: dict[str, asyncio.Future] = {}
