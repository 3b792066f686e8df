"""The audit trail of SCR reads: one AuditEvent per read, its stored form, and the trail Bundle
(which lists PDS reads too: pds_audit.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..outcome import NHS_NUMBER_SYSTEM, iso_instant
from .answers import searchset
from .codec import canonical_json, load_object
from .codes import SCR_ID_SYSTEM, USER_SYSTEM, UUID_SYSTEM


def audit_event(
    event_id: str,
    *,
    user: str,
    role: str,
    recorded_us: int,
    nhs: str,
    scr_id: str,
    emergency_reason: str | None = None,
    request_id: str | None = None,
) -> dict:
    """The AuditEvent of one SCR read: who, in what role, when, which record, and the
    emergency-access reason when one was claimed."""
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle",
            "code": "access",
            "display": "Access/View Record Lifecycle Event",
        },
        "action": "R",
        "recorded": iso_instant(recorded_us),
        # 0 is success: an event is written only for a read that then returns the document.
        "outcome": "0",
        "agent": [
            {
                "who": {"identifier": {"system": USER_SYSTEM, "value": user}, "display": user},
                "role": [{"text": role}],
                "requestor": True,
            }
        ],
        "source": {"observer": {"display": "spinekv summary-care-record"}},
        "entity": [
            {"what": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs}}},
            {"what": {"identifier": {"system": SCR_ID_SYSTEM, "value": scr_id}}},
        ],
    }
    if emergency_reason is not None:
        event["purposeOfEvent"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": "ETREAT",
                        "display": "Emergency Treatment",
                    }
                ],
                "text": emergency_reason,
            }
        ]
    if request_id is not None:
        event["entity"].append(
            {
                "what": {"identifier": {"system": UUID_SYSTEM, "value": request_id}},
                "description": "X-Request-ID of the read",
            }
        )
    return event


def audit_record(event: dict, recorded_us: int) -> dict:
    """What bucket `audit` keeps of an event: the event and its time as a sortable integer
    (the audit log adds its chain link: records/audit.py)."""
    return {"recorded_us": recorded_us, "event": event}


def encode_audit(event: dict, recorded_us: int) -> bytes:
    """An audit record's bytes, unchained."""
    return canonical_json(audit_record(event, recorded_us))


def decode_audit(value: bytes) -> tuple[int, dict] | None:
    """(recorded_us, event) of a stored audit record, or None when the bytes are not one."""
    raw = load_object(value)
    if (
        raw is None
        or not isinstance(raw.get("recorded_us"), int)
        or not isinstance(raw.get("event"), dict)
    ):
        return None
    return raw["recorded_us"], raw["event"]


def audit_bundle(
    bundle_id: str, values: Iterable[bytes], base_url: str, skipped: Iterable[str] = ()
) -> dict:
    """Every audit record (siblings included: none is merged away), oldest first. Byte-identical
    copies are one record; undecodable values are skipped; `skipped` says which records were
    left out and why."""
    events = [d for v in sorted(set(values)) if (d := decode_audit(v)) is not None]
    events.sort(key=lambda d: (d[0], str(d[1].get("id", ""))))
    return searchset(
        bundle_id,
        [(f"{base_url}/AuditEvent/{e.get('id', '')}", e) for _, e in events],
        skipped=skipped,
    )
