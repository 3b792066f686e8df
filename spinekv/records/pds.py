"""Demographics: create, read, search and patch patients over the ring (the PDS-like service)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from ..config import RecordSettings
from . import nhs, patient, search
from .outcome import RecordError
from .patient import Envelope
from .store import RecordStore

BUCKET = "patients"
FETCHES = 16  # patient reads in flight at once for one search

log = logging.getLogger("spinekv.records")


class Demographics:
    """Patients kept as envelopes (see patient.py) under their NHS numbers, searchable by 2i."""

    def __init__(
        self,
        store: RecordStore,
        settings: RecordSettings | None = None,
        today: Callable[[], dt.date] | None = None,
    ) -> None:
        self.store = store
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
        envelopes = [patient.decode(v) for v in fetched.values]
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
        loaded = await self.load(number)
        return None if loaded is None else patient.to_fhir(loaded[0])

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

    async def _fetch_many(self, numbers: list[str]) -> list[dict]:
        # A broad search may name up to MAX_CANDIDATES patients: read a few at a time.
        limit = asyncio.Semaphore(FETCHES)

        async def fetch(number: str) -> dict | None:
            async with limit:
                return await self.read(number)

        found = await asyncio.gather(*(fetch(n) for n in numbers))
        return [p for p in found if p is not None]

    async def search(self, criteria: search.Criteria) -> tuple[int, list[tuple[float, dict]]]:
        """(number of matches, the best `max_results` of them) from the 2i entries, not a scan."""
        field, start, end = search.index_range(criteria)
        hits = await self.store.query(BUCKET, field, start, end)
        numbers = sorted({key for term, key in hits if search.term_in_range(criteria, str(term))})
        if len(numbers) > search.MAX_CANDIDATES:
            raise RecordError(
                "TOO_MANY_MATCHES",
                f"{len(numbers)} candidates: narrow the search (a longer name or fewer dates)",
            )
        ranked = search.rank(criteria, await self._fetch_many(numbers))
        return len(ranked), ranked[: criteria.max_results]

    async def candidates(self, family: str, birth_date: str) -> list[dict]:
        """Patients with this (normalised) family name and birth date (YYYY-MM-DD)."""
        term = f"{patient.normalise_name(family)}|{patient.compact_date(birth_date)}"
        hits = await self.store.query(BUCKET, "family_dob_bin", term)
        found = await self._fetch_many(sorted({key for _, key in hits}))
        # Index entries of not yet merged siblings may name a family the merge replaced.
        wanted = patient.normalise_name(family)
        return [
            p
            for p in found
            if p["birthDate"] == birth_date
            and any(patient.normalise_name(n.get("family", "")) == wanted for n in p["name"])
        ]
