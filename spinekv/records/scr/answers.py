"""The SCR API's FHIR answers: the DocumentReference to a patient's SCR, and searchset Bundles."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..outcome import NHS_NUMBER_SYSTEM, iso_instant, skipped_entry
from .codes import PERMISSION_SYSTEM, SCR_ID_SYSTEM, scr_type
from .ids import derived_id
from .state import permission_code


def read_url(base_url: str, nhs: str, scr_id: str) -> str:
    """Where GET /Bundle serves this SCR."""
    return (
        f"{base_url}/Bundle?composition.identifier={scr_id}"
        f"&composition.subject:Patient.identifier={NHS_NUMBER_SYSTEM}|{nhs}"
    )


def _patient_ref(nhs: str) -> dict:
    return {
        "reference": f"Patient/{nhs}",
        "identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs},
    }


def document_reference(
    nhs: str, scr_id: str, at_us: int, permission: str | None, base_url: str
) -> dict:
    """The DocumentReference pointing at a patient's SCR (`at_us`: when it was uploaded)."""
    reference: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": derived_id(scr_id, "DocumentReference"),
        "masterIdentifier": {"system": SCR_ID_SYSTEM, "value": scr_id},
        "status": "current",
        "type": scr_type(),
        "subject": _patient_ref(nhs),
        "date": iso_instant(at_us),
        "content": [
            {
                "attachment": {
                    "contentType": "application/fhir+json",
                    "url": read_url(base_url, nhs, scr_id),
                }
            }
        ],
        "context": {"event": [scr_type()]},
    }
    if permission is not None:
        reference["securityLabel"] = [
            {"coding": [{"system": PERMISSION_SYSTEM, "code": permission}]}
        ]
    return reference


def searchset(
    bundle_id: str,
    matches: list[tuple[str, dict]],
    extra: Iterable[tuple[str, dict]] = (),
    skipped: Iterable[str] = (),
    **fields: Any,
) -> dict:
    """A searchset Bundle: `matches` (fullUrl, resource) counted in total; `extra` included;
    an outcome entry for each bad record `skipped` (why, naming it)."""
    entry = [
        {"fullUrl": url, "resource": resource, "search": {"mode": "match"}}
        for url, resource in matches
    ]
    entry += [
        {"fullUrl": url, "resource": resource, "search": {"mode": "include"}}
        for url, resource in extra
    ]
    entry += [skipped_entry(reason) for reason in skipped]
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "searchset",
        **fields,
        "total": len(matches),
        "entry": entry,
    }


def document_reference_bundle(bundle_id: str, nhs: str, state: dict, base_url: str) -> dict:
    """GET /DocumentReference's answer: the current SCR's DocumentReference (none: empty)."""
    current = state.get("current")
    if current is None:
        return searchset(bundle_id, [])
    ref = document_reference(nhs, current["id"], current["at_us"], permission_code(state), base_url)
    patient = {
        "resourceType": "Patient",
        "id": nhs,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
    }
    return searchset(
        bundle_id,
        [(f"{base_url}/DocumentReference/{ref['id']}", ref)],
        [(f"{base_url}/Patient/{nhs}", patient)],
    )


def scr_bundle(bundle_id: str, stored: dict, timestamp: str) -> dict:
    """GET /Bundle's answer, as the real API gives it: a searchset Bundle of the document's
    entries, Composition first (total = every entry)."""
    document = stored["document"]
    entries = document["entry"]
    first = [e for e in entries if e["resource"]["resourceType"] == "Composition"]
    rest = [e for e in entries if e["resource"]["resourceType"] != "Composition"]
    fields: dict[str, Any] = {"timestamp": timestamp}
    if isinstance(document.get("identifier"), dict):
        fields["identifier"] = document["identifier"]
    matches = [
        (e.get("fullUrl") or f"urn:uuid:{e['resource'].get('id', '')}", e["resource"])
        for e in first + rest
    ]
    return searchset(bundle_id, matches, **fields)
