"""Summary Care Record service: upload, find, read (audited), consent and the audit trail.

Decisions (the pure rules are in the modules beside this one):
- Upload needs the patient in `patients` (404 RESOURCE_NOT_FOUND) and refuses with 403
  FORBIDDEN_UPDATE when the patient's permission is No: the caller may write SCRs, it is this
  patient's dissent that forbids the update, so ACCESS_DENIED stays the answer about the
  caller's own rights. The same SCR id again with the same content is a 201 that changes
  nothing; with other content it is 400 INVALID_VALUE, as the real API answers a duplicate
  event.
- With permission No, find and read answer 403 ACCESS_DENIED, as the real API's access
  control does ("no patient's consent to view SCR"); no SCR content or id leaves the store.
- Only the current SCR is readable: an out-of-date id (or one for another patient) answers an
  empty searchset, as the real API does.
- Every read that returns a document first writes an AuditEvent (quorum write, unique key). If
  that write fails the read fails with 503 and returns nothing. The DocumentReference find
  does not write one: it returns a pointer, no clinical content.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..outcome import RecordError, iso_instant
from ..pds import Demographics
from ..store import RecordStore
from .answers import document_reference_bundle, scr_bundle, searchset
from .audit import audit_bundle, audit_event, encode_audit
from .permission import PermissionRequest, parse_set_permission
from .state import (
    decode_state,
    empty_state,
    encode_state,
    merge_state,
    permission_code,
    with_current,
    with_permission,
)
from .stored import encode_stored, pick_stored, same_upload
from .upload import validate_document

SCR_BUCKET = "scr"
STATE_BUCKET = "scrstate"
AUDIT_BUCKET = "audit"
# Audit records fetched at once when listing a patient's trail.
_AUDIT_FETCHES = 16


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads, for the audit trail."""

    name: str
    role: str
    request_id: str
    emergency_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Uploaded:
    """What an upload left current: the SCR, its patient, when it was stored, the consent code."""

    scr_id: str
    nhs: str
    at_us: int
    permission: str | None


class ScrService:
    def __init__(self, store: RecordStore, demographics: Demographics) -> None:
        self.store = store
        self.demographics = demographics

    # ------------------------------------------------------------ state

    async def _state(self, nhs: str) -> tuple[dict, dict[str, int]]:
        """The patient's merged consent/pointer state and the context covering its siblings."""
        fetched = await self.store.get(STATE_BUCKET, nhs)
        if fetched is None:
            return empty_state(), {}
        return merge_state(decode_state(v) for v in fetched.values), fetched.context

    async def state(self, nhs: str) -> dict:
        return (await self._state(nhs))[0]

    async def _require_patient(self, nhs: str) -> None:
        if await self.demographics.read(nhs) is None:
            raise RecordError("RESOURCE_NOT_FOUND", f"no patient with NHS number {nhs}")

    # ------------------------------------------------------------ upload

    async def upload(self, body: object) -> Uploaded:
        upload = validate_document(body)
        await self._require_patient(upload.nhs)
        state, context = await self._state(upload.nhs)
        if permission_code(state) == "No":
            raise RecordError(
                "FORBIDDEN_UPDATE",
                f"patient {upload.nhs} has dissented from sharing a Summary Care Record "
                "(permission No); no SCR may be uploaded",
            )
        existing = await self.store.get(SCR_BUCKET, upload.scr_id)
        stored = None if existing is None else pick_stored(existing.values)
        if stored is not None and not same_upload(stored, upload):
            raise RecordError(
                "INVALID_VALUE",
                f"Composition.identifier {upload.scr_id} was already uploaded with different "
                "content; an updated SCR needs a new identifier",
            )
        if stored is None:
            at_us = self.store.now_us()
            await self.store.put(
                SCR_BUCKET,
                upload.scr_id,
                encode_stored(upload, at_us),
                {} if existing is None else existing.context,
                [("nhs_bin", upload.nhs)],
            )
        else:
            # A retry of an upload whose pointer write may have failed: point at it with its
            # original time, so a newer SCR uploaded since stays current.
            at_us = stored["stored_us"]
        after = with_current(state, upload.scr_id, at_us)
        if after != state:
            await self.store.put(STATE_BUCKET, upload.nhs, encode_state(after), context)
        return Uploaded(upload.scr_id, upload.nhs, at_us, permission_code(after))

    # ------------------------------------------------------------ find and read

    @staticmethod
    def _refuse_dissent(nhs: str, state: dict) -> None:
        if permission_code(state) == "No":
            raise RecordError(
                "ACCESS_DENIED",
                f"patient {nhs} has dissented from sharing their Summary Care Record "
                "(permission No)",
            )

    async def find(self, nhs: str, base_url: str) -> dict:
        """GET /DocumentReference: the current SCR's DocumentReference in a searchset."""
        state = await self.state(nhs)
        self._refuse_dissent(nhs, state)
        return document_reference_bundle(self.store.new_id(), nhs, state, base_url)

    async def read(self, scr_id: str, nhs: str, reader: Reader) -> dict:
        """GET /Bundle: the current SCR as a searchset, after its read is audited."""
        state = await self.state(nhs)
        self._refuse_dissent(nhs, state)
        current = state["current"]
        if current is None or current["id"] != scr_id:
            return searchset(self.store.new_id(), [])
        fetched = await self.store.get(SCR_BUCKET, scr_id)
        stored = None if fetched is None else pick_stored(fetched.values)
        if stored is None or stored["nhs"] != nhs:
            return searchset(self.store.new_id(), [])
        await self._audit(nhs, scr_id, reader)
        return scr_bundle(self.store.new_id(), stored, iso_instant(self.store.now_us()))

    async def _audit(self, nhs: str, scr_id: str, reader: Reader) -> None:
        event_id = self.store.new_id()
        recorded_us = self.store.now_us()
        event = audit_event(
            event_id,
            user=reader.name,
            role=reader.role,
            recorded_us=recorded_us,
            nhs=nhs,
            scr_id=scr_id,
            emergency_reason=reader.emergency_reason,
            request_id=reader.request_id,
        )
        try:
            await self.store.put(
                AUDIT_BUCKET,
                event_id,
                encode_audit(event, recorded_us),
                {},
                [("patient_bin", nhs), ("recorded_int", recorded_us)],
            )
        except RecordError as exc:
            raise RecordError(
                "SERVICE_UNAVAILABLE",
                f"the read could not be audited, so the SCR is not returned ({exc.diagnostics})",
                503,
            ) from None

    # ------------------------------------------------------------ consent

    async def set_permission(self, body: object, by: str) -> PermissionRequest:
        wanted = parse_set_permission(body)
        await self._require_patient(wanted.nhs)
        state, context = await self._state(wanted.nhs)
        after = with_permission(state, wanted.code, self.store.now_us(), by)
        await self.store.put(STATE_BUCKET, wanted.nhs, encode_state(after), context)
        return wanted

    # ------------------------------------------------------------ audit trail

    async def audit_trail(self, nhs: str, base_url: str) -> dict:
        """Every AuditEvent of the patient's SCR reads, siblings included, oldest first."""
        keys = sorted({key for _, key in await self.store.query(AUDIT_BUCKET, "patient_bin", nhs)})
        limit = asyncio.Semaphore(_AUDIT_FETCHES)

        async def fetch(key: str) -> list[bytes]:
            async with limit:
                fetched = await self.store.get(AUDIT_BUCKET, key)
            return [] if fetched is None else fetched.values

        found = await asyncio.gather(*(fetch(k) for k in keys))
        values = [v for vs in found for v in vs]
        return audit_bundle(self.store.new_id(), values, base_url)
