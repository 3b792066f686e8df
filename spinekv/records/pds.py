"""Demographics: create, read, search and patch patients over the ring (the PDS-like service)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import RecordSettings
from . import nhs, patient, search
from .audit import AuditLog, Reader
from .outcome import RecordError, bad_record
from .patient import Envelope
from .pds_audit import patient_access_event
from .scr.audit import audit_record
from .store import RecordStore

BUCKET = "patients"
FETCHES = 16  # patient reads in flight at once for one search

log = logging.getLogger("spinekv.records")


@dataclass(frozen=True, slots=True)
class Found:
    """A search's answer: how many matched, the best of them, and the bad records it skipped."""

    total: int
    ranked: list[tuple[float, dict]]
    skipped: list[str]  # why each skipped record could not be read (it names the record)


class Demographics:
    """Patients kept as envelopes (see patient.py) under their NHS numbers, searchable by 2i."""

    def __init__(
        self,
        store: RecordStore,
        settings: RecordSettings | None = None,
        today: Callable[[], dt.date] | None = None,
        *,
        audit: AuditLog,
    ) -> None:
        self.store = store
        self.audit = audit
        self._background: set[asyncio.Task] = set()
        self.settings = settings or RecordSettings()
        self.today = today or (
            lambda: dt.datetime.fromtimestamp(store.now_us() / 1e6, dt.UTC).date()
        )

    async def load(self, number: str) -> tuple[Envelope, dict[str, int]] | None:
        """The patient's envelope (siblings merged) and the context that covers them all."""
        fetched = await self.store.get(BUCKET, number)
        if fetched is None:
            return None
        try:
            envelopes = [patient.decode(v) for v in fetched.values]
        except ValueError as exc:
            raise bad_record("Patient", number, f"does not decode ({exc})") from None
        merged = patient.merge(envelopes)
        if len(envelopes) > 1:
            # Write the merge back (it supersedes exactly the siblings read), so the siblings
            # and their stale 2i entries go; a failure only leaves the merge to the next read.
            task = asyncio.ensure_future(self._write_back(number, merged, fetched.context))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return merged, fetched.context

    async def _write_back(self, number: str, env: Envelope, context: dict[str, int]) -> None:
        try:
            await self._write(number, env, context)
        except RecordError as exc:
            log.info("write-back of merged patient %s failed: %s", number, exc)

    async def read(self, number: str) -> dict | None:
        """The patient, unaudited: for the record layer's own lookups (see read_for)."""
        loaded = await self.load(number)
        return None if loaded is None else patient.to_fhir(loaded[0])

    async def read_for(self, reader: Reader, number: str) -> dict | None:
        """The patient as `reader` asked for it: audited before it is answered."""
        resource = await self.read(number)
        if resource is not None:
            await self._audit(reader, "read", [number])
        return resource

    async def _audit(self, reader: Reader, interaction: str, numbers: list[str]) -> None:
        recorded_us = self.store.now_us()
        event = patient_access_event(
            self.store.new_id(),
            reader=reader,
            recorded_us=recorded_us,
            interaction=interaction,
            numbers=numbers,
        )
        indexes = [("patient_bin", n) for n in numbers] + [("recorded_int", recorded_us)]
        await self.audit.append(audit_record(event, recorded_us), indexes)

    async def _write(self, number: str, env: Envelope, context: dict[str, int]) -> None:
        terms = patient.index_terms(env["resource"])
        await self.store.put(BUCKET, number, patient.encode(env), context, terms)

    async def create(self, body: Any, *, request_id: str, by: str) -> dict:
        """A new patient: keeps a valid, unused NHS number it carries, else allocates one.

        A create retried with the same request id finds the patient it made and answers it.
        """
        fields = patient.validate(body, self.today())
        wanted = patient.requested_number(fields)
        first, last = self.settings.nhs_number_range
        tries = [wanted] if wanted else []
        tries += list(nhs.candidates(request_id, first, last))
        for number in tries:
            loaded = await self.load(number)
            if loaded is not None:
                if patient.created_by(loaded[0], request_id):
                    return patient.to_fhir(loaded[0])
                continue
            env = patient.create(
                fields, number, update_id=request_id, at_us=self.store.now_us(), by=by
            )
            await self._write(number, env, {})
            return patient.to_fhir(env)
        raise RecordError("SERVICE_UNAVAILABLE", "no free NHS number found in the configured range")

    async def patch(
        self, number: str, if_match: int, patches: Any, *, request_id: str, by: str
    ) -> dict:
        loaded = await self.load(number)
        if loaded is None:
            raise RecordError("RESOURCE_NOT_FOUND", f"patient {number} not found")
        env, context = loaded
        if request_id in env["history"]:  # this very update was applied before: answer it
            return patient.to_fhir(env)
        current = patient.version(env)
        if if_match != current:
            raise RecordError(
                "RESOURCE_VERSION_MISMATCH",
                f"If-Match names version {if_match} but the patient is at version {current}",
            )
        updated = patient.apply_patch(
            env,
            patches,
            update_id=request_id,
            at_us=self.store.now_us(),
            by=by,
            today=self.today(),
        )
        await self._write(number, updated, context)
        return patient.to_fhir(updated)

    async def history(self, number: str) -> list[dict]:
        loaded = await self.load(number)
        if loaded is None:
            raise RecordError("RESOURCE_NOT_FOUND", f"patient {number} not found")
        entries = [{"id": uid, **e} for uid, e in loaded[0]["history"].items()]
        return sorted(entries, key=lambda e: (e["at"], e["id"]))

    async def _fetch_many(self, numbers: list[str]) -> tuple[list[dict], list[str]]:
        """The patients found, and why each bad record among them could not be read (one bad
        record must not cost every other patient under its index term its answer)."""
        # A broad search may name up to MAX_CANDIDATES patients: read a few at a time.
        limit = asyncio.Semaphore(FETCHES)

        async def fetch(number: str) -> dict | str | None:
            async with limit:
                try:
                    return await self.read(number)
                except RecordError as exc:
                    if exc.code != "INVALID_STORED_RECORD":
                        raise
                    log.error("search skipped a bad record: %s", exc.diagnostics)
                    return exc.diagnostics

        found = await asyncio.gather(*(fetch(n) for n in numbers))
        return [p for p in found if isinstance(p, dict)], [p for p in found if isinstance(p, str)]

    async def search(self, criteria: search.Criteria, reader: Reader) -> Found:
        """The matches from the 2i entries, not a scan; the patients returned are audited."""
        field, start, end = search.index_range(criteria)
        hits = await self.store.query(BUCKET, field, start, end)
        numbers = sorted({key for term, key in hits if search.term_in_range(criteria, str(term))})
        if len(numbers) > search.MAX_CANDIDATES:
            raise RecordError(
                "TOO_MANY_MATCHES",
                f"{len(numbers)} candidates: narrow the search (a longer name or fewer dates)",
            )
        patients, skipped = await self._fetch_many(numbers)
        ranked = search.rank(criteria, patients)
        best = ranked[: criteria.max_results]
        if best:
            await self._audit(reader, "search-type", [p["id"] for _, p in best])
        return Found(len(ranked), best, skipped)

    async def candidates(self, family: str, birth_date: str) -> list[dict]:
        """Patients with this (normalised) family name and birth date (YYYY-MM-DD)."""
        term = f"{patient.normalise_name(family)}|{patient.compact_date(birth_date)}"
        hits = await self.store.query(BUCKET, "family_dob_bin", term)
        found, bad = await self._fetch_many(sorted({key for _, key in hits}))
        if bad:  # a match cannot be decided without every candidate
            raise RecordError("INVALID_STORED_RECORD", bad[0])
        # Index entries of not yet merged siblings may name a family the merge replaced.
        wanted = patient.normalise_name(family)
        return [
            p
            for p in found
            if p["birthDate"] == birth_date
            and any(patient.normalise_name(n.get("family", "")) == wanted for n in p["name"])
        ]
