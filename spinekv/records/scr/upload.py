"""Validating an SCR upload: a document Bundle whose Composition names the SCR and the patient."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..outcome import NHS_NUMBER_SYSTEM
from .checks import invalid, missing, nhs_of, require_list, require_resource
from .codes import ALLERGIES_SECTION, MEDICATION_SECTIONS, SCR_TYPE_CODE, SCR_TYPE_DISPLAY, SNOMED
from .ids import canonical_scr_id


@dataclass(frozen=True, slots=True)
class Upload:
    """A validated SCR upload: its id, the patient, the Composition date and the whole Bundle."""

    scr_id: str
    nhs: str
    date: str
    document: dict


def _codes(concept: Any, system: str | None = None) -> list[str]:
    """The codes of a CodeableConcept (of `system` when given); malformed codings ignored."""
    if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list):
        return []
    return [
        c["code"]
        for c in concept["coding"]
        if isinstance(c, dict)
        and isinstance(c.get("code"), str)
        and (system is None or c.get("system") == system)
    ]


def _valid_datetime(text: Any) -> bool:
    """A FHIR date or dateTime (YYYY-MM-DD, or with time and an offset)."""
    if not isinstance(text, str) or len(text) < 10 or not text.isascii():
        return False
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10 or parsed.tzinfo is not None


def validate_document(body: Any) -> Upload:
    """Check an upload Bundle; RecordError MISSING_VALUE / INVALID_VALUE names the JSON path."""
    body = require_resource(body, "Bundle")
    bundle_type = body.get("type")
    if bundle_type is None:
        raise missing("Bundle.type", "required (document)")
    if bundle_type != "document":
        raise invalid("Bundle.type", f"unsupported Bundle.type {bundle_type!r}: expected document")
    why = "a document needs entries, the Composition first"
    entries = require_list(body, "entry", "Bundle.entry", why, " of entries")
    if not entries:
        raise missing("Bundle.entry", why)
    for i, entry in enumerate(entries):
        path = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict):
            raise invalid(path, "expected an object")
        resource = entry.get("resource")
        if resource is None:
            raise missing(f"{path}.resource", "required")
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise invalid(f"{path}.resource", "expected a FHIR resource with a resourceType")
    compositions = [
        i for i, e in enumerate(entries) if e["resource"]["resourceType"] == "Composition"
    ]
    if not compositions:
        raise missing("Bundle.entry", "no Composition entry")
    if len(compositions) > 1:
        raise invalid(f"Bundle.entry[{compositions[1]}]", "a document has one Composition")
    at = compositions[0]
    path = f"Bundle.entry[{at}].resource"
    composition = entries[at]["resource"]

    concept = composition.get("type")
    if concept is None:
        raise missing(f"{path}.type", f"required (SNOMED {SCR_TYPE_CODE})")
    if SCR_TYPE_CODE not in _codes(concept, SNOMED):
        raise invalid(
            f"{path}.type.coding",
            f"expected SNOMED code {SCR_TYPE_CODE} ({SCR_TYPE_DISPLAY}) with system {SNOMED}",
        )

    identifier = composition.get("identifier")
    if identifier is None:
        raise missing(f"{path}.identifier", "required (the SCR id)")
    if not isinstance(identifier, dict):
        raise invalid(f"{path}.identifier", "expected an Identifier object")
    raw_id = identifier.get("value")
    if raw_id is None:
        raise missing(f"{path}.identifier.value", "required (the SCR id, a UUID)")
    scr_id = canonical_scr_id(raw_id)
    if scr_id is None:
        raise invalid(f"{path}.identifier.value", f"{raw_id!r} is not a UUID")

    nhs = _subject_nhs(composition, entries, path)

    date = composition.get("date")
    if date is None:
        raise missing(f"{path}.date", "required (when the summary was made)")
    if not _valid_datetime(date):
        raise invalid(f"{path}.date", f"{date!r} is not a FHIR date or dateTime with offset")

    _check_sections(composition, path)
    return Upload(scr_id=scr_id, nhs=nhs, date=date, document=body)


def _subject_nhs(composition: dict, entries: list[dict], path: str) -> str:
    """The patient's NHS number: from subject.identifier or the Patient entry it references."""
    subject = composition.get("subject")
    if subject is None:
        raise missing(f"{path}.subject", "required (the patient)")
    if not isinstance(subject, dict):
        raise invalid(f"{path}.subject", "expected a Reference object")
    if subject.get("identifier") is not None:
        return nhs_of(subject["identifier"], f"{path}.subject.identifier")
    reference = subject.get("reference")
    if reference is None:
        raise missing(f"{path}.subject", "needs an NHS number identifier or a Patient reference")
    if not isinstance(reference, str) or not reference:
        raise invalid(f"{path}.subject.reference", "expected a reference text")
    for i, entry in enumerate(entries):
        resource = entry["resource"]
        if resource["resourceType"] == "Patient" and reference in (
            entry.get("fullUrl"),
            f"Patient/{resource.get('id')}",
        ):
            return _patient_nhs(resource, f"Bundle.entry[{i}].resource")
    raise invalid(f"{path}.subject.reference", f"{reference!r} is not a Patient in the Bundle")


def _patient_nhs(patient: dict, path: str) -> str:
    identifiers = patient.get("identifier")
    if not isinstance(identifiers, list):
        raise missing(f"{path}.identifier", f"the patient needs a {NHS_NUMBER_SYSTEM} identifier")
    for j, identifier in enumerate(identifiers):
        if isinstance(identifier, dict) and identifier.get("system") == NHS_NUMBER_SYSTEM:
            return nhs_of(identifier, f"{path}.identifier[{j}]")
    raise missing(f"{path}.identifier", f"the patient needs a {NHS_NUMBER_SYSTEM} identifier")


def _check_sections(composition: dict, path: str) -> None:
    sections = require_list(
        composition,
        "section",
        f"{path}.section",
        "required (allergies and medications sections)",
        " of sections",
    )
    found: set[str] = set()
    for k, section in enumerate(sections):
        if not isinstance(section, dict):
            raise invalid(f"{path}.section[{k}]", "expected an object")
        found.update(_codes(section.get("code")))
    if ALLERGIES_SECTION not in found:
        raise missing(
            f"{path}.section",
            f"no allergies and adverse reactions section (code {ALLERGIES_SECTION})",
        )
    if not found.intersection(MEDICATION_SECTIONS):
        raise missing(
            f"{path}.section",
            f"no medications section (code one of {', '.join(MEDICATION_SECTIONS)})",
        )
