"""The code systems and codes an SCR is written in, as NHS Digital's SCR FHIR API uses them."""

from __future__ import annotations

SNOMED = "http://snomed.info/sct"
SCR_TYPE_CODE = "196981000000101"
SCR_TYPE_DISPLAY = "General Practice Summary"
SCR_CATEGORY_CODE = "163171000000105"
SCR_CATEGORY_DISPLAY = "Care Professional Documentation"
UUID_SYSTEM = "https://tools.ietf.org/html/rfc4122"
SCR_ID_SYSTEM = "https://fhir.nhs.uk/Id/nhsSCRUUID"
PERMISSION_SYSTEM = "https://fhir.nhs.uk/CodeSystem/SCR-ACSPermission"
USER_SYSTEM = "urn:spinekv:user"  # record API users (cluster.toml [[user]]), not SDS ids
PERMISSIONS = ("Yes", "No", "Ask")
ALLERGIES_SECTION = "AllergiesHeader"
MEDICATION_SECTIONS = ("AcuteMedsHeader", "RepeatMedsHeader", "DiscRepeatMedsHeader")


def scr_type() -> dict:
    """The CodeableConcept of a General Practice Summary (a fresh copy: callers may nest it)."""
    return {"coding": [{"system": SNOMED, "code": SCR_TYPE_CODE, "display": SCR_TYPE_DISPLAY}]}
