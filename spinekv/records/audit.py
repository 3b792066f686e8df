"""The audit trail's writer and reader on one node: appends chained records, walks chains.

Each node chains its own audit records (security/auditchain.py). Appends queue; one writer task
at a time turns everything queued into the node's next link (group commit: one replicated
write per batch, not per audited read) and answers each append once its link is stored. The
writer takes the next seq and moves the head on before it awaits, and there is only ever one
writer, so the chain cannot fork. The head is kept in the node's own backend metadata
(written, not fsynced, before the link is sent), so it survives a restart; on loading it, the
node steps past any link stored after it (a power cut can leave the head behind), and a node
whose metadata is gone finds its last link in the store first. A link whose write fails leaves
its seq as a gap, which `verify` reports (and the node logs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..security import auditchain
from ..security.auditchain import ChainReport, Head
from .outcome import RecordError
from .store import RecordStore, Term

AUDIT_BUCKET = "audit"
HEAD_META = "audit_head"  # node metadata (Backend.get_meta/put_meta): this node's Head
CHAIN_INDEX = "chain_bin"
PATIENT_INDEX = "patient_bin"
# Audit records fetched at once when reading a trail or a chain.
FETCHES = 16
# The most audit records one link carries (an AuditEvent is about a kilobyte).
BATCH = 128

log = logging.getLogger("spinekv.records.audit")


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads a record, for the audit trail."""

    name: str
    role: str
    request_id: str
    emergency_reason: str | None = None


def _answer(batch: list, failure: RecordError | None) -> None:
    for _, _, done in batch:
        if done.done():
            continue
        if failure is None:
            done.set_result(None)
        else:
            done.set_exception(failure)


class AuditLog:
    """This node's chain of audit records in bucket `audit` of the record store."""

    def __init__(
        self,
        store: RecordStore,
        node: str,
        key: bytes,
        load_head: Callable[[], bytes | None],
        save_head: Callable[[bytes], None],
    ) -> None:
        self.store = store
        self.node = node
        self._key = key
        self._load_head = load_head
        self._save_head = save_head
        self._head: Head | None = None
        self._recovering = asyncio.Lock()
        # Records waiting for the next link, each with its index terms and its waiting caller.
        self._queue: list[tuple[dict, list[tuple[str, Term]], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def head(self) -> Head:
        """This node's last link (loaded once; recovered from the store if never kept here)."""
        if self._head is None:
            async with self._recovering:
                if self._head is None:
                    raw = self._load_head()
                    if raw is None:
                        self._head = await self._recover()
                    else:
                        self._head = await self._catch_up(auditchain.decode_head(raw))
        return self._head

    async def _catch_up(self, head: Head) -> Head:
        """`head`, moved past every genuine link of this node stored after it."""
        while True:
            key = auditchain.link_key(self.node, head.seq + 1)
            fetched = await self.store.get(AUDIT_BUCKET, key)
            found = [
                value
                for value in ([] if fetched is None else fetched.values)
                if (link := auditchain.opened(self._key, value)) is not None
                and link.node == self.node
                and link.seq == head.seq + 1
            ]
            if not found:
                return head
            log.warning("audit chain of %s: head carried forward past seq %d", self.node, head.seq)
            head = Head(head.seq + 1, auditchain.link_hash(found[0]))

    async def _recover(self) -> Head:
        """The last genuine link of this node in the store: its metadata was lost (or it never
        wrote one), and starting again at seq 1 would fork its chain."""
        last = Head()
        for _, values in await self.stored(self.node):
            for value in values:
                found = auditchain.opened(self._key, value)
                if found is not None and found.node == self.node and found.seq > last.seq:
                    last = Head(found.seq, found.hash)
        if last.seq:
            log.warning("audit chain of %s recovered from the store at seq %d", self.node, last.seq)
        return last

    async def append(self, record: dict, indexes: Iterable[tuple[str, Term]]) -> None:
        """Store `record` in this node's chain; RecordError 503 when it cannot be written."""
        terms = list(indexes)
        patients = sorted({str(term) for field, term in terms if field == PATIENT_INDEX})
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(({**record, "patients": patients}, terms, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_links())
        await done

    async def _write_links(self) -> None:
        """Write what is queued as links, one at a time, until nothing is left."""
        batch: list = []
        try:
            while self._queue:
                batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
                failure = await self._write_link(batch)
                _answer(batch, failure)
                batch = []
        finally:
            # Reached with callers waiting only when the writer failed or was cancelled (the
            # node stopping): they must hear so, not wait forever.
            self._writer = None
            stopped = RecordError("SERVICE_UNAVAILABLE", "the audit writer stopped", 503)
            _answer(batch + self._queue, self._unaudited(stopped))
            self._queue = []

    async def _write_link(self, batch: list) -> RecordError | None:
        try:
            await self.head()
        except RecordError as exc:
            return self._unaudited(exc)
        head = self._head
        assert head is not None
        seq = head.seq + 1
        value = auditchain.link(self._key, self.node, seq, head.hash, [r for r, _, _ in batch])
        self._head = Head(seq, auditchain.link_hash(value))
        self._save_head(auditchain.encode_head(self._head))
        key = auditchain.link_key(self.node, seq)
        terms = {term for _, indexes, _ in batch for term in indexes}
        try:
            await self.store.put(AUDIT_BUCKET, key, value, {}, [*sorted(terms), (CHAIN_INDEX, key)])
        except RecordError as exc:
            log.error("audit link %s was not written (verify will show it missing): %s", key, exc)
            return self._unaudited(exc)
        except Exception:
            log.exception("audit link %s was not written (verify will show it missing)", key)
            return self._unaudited(RecordError("SERVICE_UNAVAILABLE", "audit write failed", 503))
        return None

    @staticmethod
    def _unaudited(exc: RecordError) -> RecordError:
        return RecordError(
            "SERVICE_UNAVAILABLE",
            f"the read could not be audited, so the record is not returned ({exc.diagnostics})",
            503,
        )

    async def _fetch_all(self, keys: list[str]) -> list[tuple[str, list[bytes]]]:
        limit = asyncio.Semaphore(FETCHES)

        async def fetch(key: str) -> tuple[str, list[bytes]]:
            async with limit:
                fetched = await self.store.get(AUDIT_BUCKET, key)
            return key, [] if fetched is None else fetched.values

        return list(await asyncio.gather(*(fetch(k) for k in keys)))

    async def stored(self, node: str, through: int = 0) -> list[tuple[str, list[bytes]]]:
        """(key, siblings) of every record filed under `node`'s chain in the index, and of
        every link key up to the last seq seen (or `through`): those are read by key, so a
        record whose index entry is missing or not yet on the replica asked is still found."""
        first, last = auditchain.node_range(node)
        hits = await self.store.query(AUDIT_BUCKET, CHAIN_INDEX, first, last)
        keys = {key for _, key in hits}
        seqs = [s for k in keys if (s := auditchain.seq_of_key(node, k)) is not None]
        top = max([through, *seqs])
        keys.update(auditchain.link_key(node, seq) for seq in range(1, top + 1))
        return await self._fetch_all(sorted(keys))

    async def verify(self, node: str) -> ChainReport:
        """Walk `node`'s chain; this node's own chain is also held against its head."""
        head = await self.head() if node == self.node else None
        stored = await self.stored(node, 0 if head is None else head.seq)
        return auditchain.check_chain(self._key, node, stored, head)

    async def patient_records(self, nhs: str) -> tuple[list[bytes], list[str]]:
        """The patient's audit records (each as bytes) from links whose MAC verifies, and the
        keys of links that did not (kept out of the trail: nobody may add to, or change, what
        it shows). A link's records about other patients stay out of this one's trail."""
        hits = await self.store.query(AUDIT_BUCKET, PATIENT_INDEX, nhs)
        genuine, forged = [], set()
        for key, values in await self._fetch_all(sorted({k for _, k in hits})):
            for value in values:
                found = auditchain.opened(self._key, value)
                if found is None or auditchain.link_key(found.node, found.seq) != key:
                    forged.add(key)
                    continue
                for record in auditchain.records_of(value):
                    if nhs in record.get("patients", ()):
                        trimmed = {k: v for k, v in record.items() if k != "patients"}
                        genuine.append(auditchain.canonical_record(trimmed))
        return genuine, sorted(forged)
