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
- Every read that returns a document first writes an AuditEvent (quorum write, the next link
  of this node's audit chain). If that write fails the read fails with 503 and returns
  nothing. The DocumentReference find does not write one: it returns a pointer, no clinical
  content.
- Consent fails closed: a consent state that fails its integrity check (or does not decode)
  denies find and read with 403 ACCESS_DENIED saying so, and refuses uploads (the dissent it may
  hold is unknown). $setPermission rewrites it: the current SCR is found again from the SCRs
  stored for the patient.
- A stored SCR that fails its check is a 500 INVALID_STORED_RECORD naming it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..audit import AuditLog, Reader
from ..outcome import RecordError, bad_record, iso_instant
from ..pds import Demographics
from ..store import RecordStore
from .answers import document_reference_bundle, scr_bundle, searchset
from .audit import audit_bundle, audit_event, audit_record
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

log = logging.getLogger("spinekv.records.scr")


@dataclass(frozen=True, slots=True)
class Uploaded:
    """What an upload left current: the SCR, its patient, when it was stored, the consent code."""

    scr_id: str
    nhs: str
    at_us: int
    permission: str | None


class ScrService:
    def __init__(self, store: RecordStore, demographics: Demographics, audit: AuditLog) -> None:
        self.store = store
        self.demographics = demographics
        self.audit = audit

    # ------------------------------------------------------------ state

    async def _state(self, nhs: str) -> tuple[dict, dict[str, int]]:
        """The patient's merged consent/pointer state and the context covering its siblings;
        RecordError INVALID_STORED_RECORD naming it when it cannot be trusted."""
        fetched = await self.store.get(STATE_BUCKET, nhs)
        if fetched is None:
            return empty_state(), {}
        return self._merged(nhs, fetched.values), fetched.context

    @staticmethod
    def _merged(nhs: str, values: list[bytes]) -> dict:
        try:
            return merge_state([decode_state(v) for v in values])
        except ValueError as exc:
            raise bad_record("SCR consent of patient", nhs, f"does not decode ({exc})") from None

    async def state(self, nhs: str) -> dict:
        return (await self._state(nhs))[0]

    async def _readable_state(self, nhs: str) -> dict:
        """The state a find or read may go on with: consent that cannot be read denies access."""
        try:
            state = await self.state(nhs)
        except RecordError as exc:
            if exc.code != "INVALID_STORED_RECORD":
                raise
            log.error("SCR access denied, consent unreadable: %s", exc.diagnostics)
            raise RecordError(
                "ACCESS_DENIED",
                f"{exc.diagnostics}; the patient's consent cannot be read, so their Summary Care "
                "Record is withheld until consent is recorded again ($setPermission)",
            ) from None
        self._refuse_dissent(nhs, state)
        return state

    async def _stored(self, scr_id: str) -> tuple[dict | None, dict[str, int]]:
        """The stored SCR (None: none) and the context of its siblings."""
        fetched = await self.store.get(SCR_BUCKET, scr_id)
        if fetched is None:
            return None, {}
        try:
            return pick_stored(fetched.values), fetched.context
        except ValueError as exc:
            raise bad_record("SCR", scr_id, f"does not decode ({exc})") from None

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
        stored, stored_context = await self._stored(upload.scr_id)
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
                stored_context,
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
        state = await self._readable_state(nhs)
        return document_reference_bundle(self.store.new_id(), nhs, state, base_url)

    async def read(self, scr_id: str, nhs: str, reader: Reader) -> dict:
        """GET /Bundle: the current SCR as a searchset, after its read is audited."""
        state = await self._readable_state(nhs)
        current = state["current"]
        if current is None or current["id"] != scr_id:
            return searchset(self.store.new_id(), [])
        stored, _ = await self._stored(scr_id)
        if stored is None or stored["nhs"] != nhs:
            return searchset(self.store.new_id(), [])
        await self._audit(nhs, scr_id, reader)
        return scr_bundle(self.store.new_id(), stored, iso_instant(self.store.now_us()))

    async def _audit(self, nhs: str, scr_id: str, reader: Reader) -> None:
        recorded_us = self.store.now_us()
        event = audit_event(
            self.store.new_id(),
            user=reader.name,
            role=reader.role,
            recorded_us=recorded_us,
            nhs=nhs,
            scr_id=scr_id,
            emergency_reason=reader.emergency_reason,
            request_id=reader.request_id,
        )
        indexes = [("patient_bin", nhs), ("recorded_int", recorded_us)]
        await self.audit.append(audit_record(event, recorded_us), indexes)

    # ------------------------------------------------------------ consent

    async def set_permission(self, body: object, by: str) -> PermissionRequest:
        wanted = parse_set_permission(body)
        await self._require_patient(wanted.nhs)
        state, context = await self._state_to_rewrite(wanted.nhs)
        after = with_permission(state, wanted.code, self.store.now_us(), by)
        await self.store.put(STATE_BUCKET, wanted.nhs, encode_state(after), context)
        return wanted

    async def _state_to_rewrite(self, nhs: str) -> tuple[dict, dict[str, int]]:
        """The state a consent write builds on. One that cannot be trusted is replaced whole:
        its consent is what is being recorded now, and its current SCR is found again."""
        fetched = await self.store.get(STATE_BUCKET, nhs, skip_bad=True)
        if fetched is None:
            return empty_state(), {}
        if not fetched.bad:
            return self._merged(nhs, fetched.values), fetched.context
        log.warning("rewriting the SCR consent of patient %s: %s", nhs, fetched.bad[0])
        state = empty_state()
        for _, scr_id in await self.store.query(SCR_BUCKET, "nhs_bin", nhs):
            try:
                stored, _ = await self._stored(scr_id)
            except RecordError as exc:
                if exc.code != "INVALID_STORED_RECORD":
                    raise
                continue  # a bad SCR cannot be current
            if stored is not None and stored["nhs"] == nhs:
                state = with_current(state, scr_id, stored["stored_us"])
        return state, fetched.context

    # ------------------------------------------------------------ audit trail

    async def audit_trail(self, nhs: str, base_url: str) -> dict:
        """Every genuine AuditEvent of the patient (SCR and PDS reads), siblings included, oldest
        first; records that fail their MAC are left out and reported in an outcome entry."""
        genuine, forged = await self.audit.patient_records(nhs)
        outcomes = [
            bad_record("audit record", key, "failed its integrity check").diagnostics
            for key in forged
        ]
        return audit_bundle(self.store.new_id(), genuine, base_url, outcomes)
