"""Building an SCR upload Bundle from SNOMED (code, display) pairs (for demos and tests)."""

from __future__ import annotations

import html
from typing import Any

from ..outcome import NHS_NUMBER_SYSTEM
from .codes import (
    ALLERGIES_SECTION,
    SCR_CATEGORY_CODE,
    SCR_CATEGORY_DISPLAY,
    SCR_TYPE_DISPLAY,
    SNOMED,
    UUID_SYSTEM,
    scr_type,
)
from .ids import canonical_scr_id, derived_id


def _table(rows: list[tuple[str, str]], when: str, kind: str) -> str:
    if not rows:
        body = '<tr><td colspan="3">No relevant information available for this category.</td></tr>'
    else:
        body = "".join(
            f"<tr><td>{html.escape(when[:10])}</td><td>{html.escape(display)}</td>"
            f"<td>{html.escape(code)}</td></tr>"
            for code, display in rows
        )
    return (
        f'<div xmlns="http://www.w3.org/1999/xhtml"><table id="{kind}"><thead><tr><th>Date</th>'
        f"<th>Description</th><th>SNOMED CT</th></tr></thead><tbody>{body}</tbody></table></div>"
    )


def _section(
    title: str, code: str, rows: list[tuple[str, str]], refs: list[str], when: str
) -> dict:
    section: dict[str, Any] = {
        "title": title,
        "code": {"coding": [{"code": code}]},
        "text": {"status": "generated", "div": _table(rows, when, code)},
    }
    if refs:
        section["entry"] = [{"reference": ref} for ref in refs]
    return section


def _full_url(resource_id: str) -> str:
    return f"urn:uuid:{resource_id}"


def _snomed(code: str, display: str) -> dict:
    return {"coding": [{"system": SNOMED, "code": code, "display": display}]}


def _entry(scr_id: str, kind: str, index: int, fields: dict) -> dict:
    """The `index`th entry of this `kind`, with its id derived from the SCR id."""
    rid = derived_id(scr_id, kind, str(index))
    return {"fullUrl": _full_url(rid), "resource": {"resourceType": kind, "id": rid, **fields}}


def _allergy(code: str, display: str, patient_url: str, when: str) -> dict:
    return {
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
        "code": _snomed(code, display),
        "patient": {"reference": patient_url},
        "recordedDate": when,
    }


def _medication(code: str, display: str, patient_url: str, when: str) -> dict:
    return {
        "status": "active",
        "medicationCodeableConcept": _snomed(code, display),
        "subject": {"reference": patient_url},
        "dateAsserted": when,
    }


def build_document(
    nhs: str,
    scr_id: str,
    *,
    allergies: list[tuple[str, str]],
    medications: list[tuple[str, str]],
    author: str,
    when: str,
) -> dict:
    """An upload Bundle `validate_document` accepts: SNOMED (code, display) pairs, `when` an
    ISO 8601 instant. Deterministic: the same arguments give the same Bundle."""
    canonical = canonical_scr_id(scr_id)
    if canonical is None:
        raise ValueError(f"scr_id {scr_id!r} is not a UUID")
    scr_id = canonical
    patient_id = derived_id(scr_id, "Patient")
    author_id = derived_id(scr_id, "Practitioner")

    patient_url = _full_url(patient_id)
    allergy_entries = [
        _entry(scr_id, "AllergyIntolerance", i, _allergy(code, display, patient_url, when))
        for i, (code, display) in enumerate(allergies)
    ]
    medication_entries = [
        _entry(scr_id, "MedicationStatement", i, _medication(code, display, patient_url, when))
        for i, (code, display) in enumerate(medications)
    ]
    composition = {
        "resourceType": "Composition",
        "id": scr_id,
        "meta": {"lastUpdated": when},
        "identifier": {"system": UUID_SYSTEM, "value": scr_id},
        "status": "final",
        "type": scr_type(),
        "category": [
            {
                "coding": [
                    {"system": SNOMED, "code": SCR_CATEGORY_CODE, "display": SCR_CATEGORY_DISPLAY}
                ]
            }
        ],
        "subject": {"reference": patient_url},
        "date": when,
        "author": [{"reference": _full_url(author_id), "display": author}],
        "title": SCR_TYPE_DISPLAY,
        "section": [
            _section(
                "Allergies and Adverse Reactions",
                ALLERGIES_SECTION,
                allergies,
                [e["fullUrl"] for e in allergy_entries],
                when,
            ),
            _section(
                "Current Repeat Medications",
                "RepeatMedsHeader",
                medications,
                [e["fullUrl"] for e in medication_entries],
                when,
            ),
        ],
    }
    return {
        "resourceType": "Bundle",
        "id": derived_id(scr_id, "Bundle"),
        "identifier": {"system": UUID_SYSTEM, "value": derived_id(scr_id, "Bundle")},
        "type": "document",
        "timestamp": when,
        "entry": [
            {"fullUrl": _full_url(scr_id), "resource": composition},
            {
                "fullUrl": patient_url,
                "resource": {
                    "resourceType": "Patient",
                    "id": patient_id,
                    "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
                },
            },
            {
                "fullUrl": _full_url(author_id),
                "resource": {
                    "resourceType": "Practitioner",
                    "id": author_id,
                    "name": [{"text": author}],
                },
            },
            *allergy_entries,
            *medication_entries,
        ],
    }
