"""The record API's part of the OpenAPI document: PDS, SCR and batch-trace paths (data only)."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

PDS = "/personal-demographics/FHIR/R4"
SCR = "/summary-care-record/FHIR/R4"
FHIR = "application/fhir+json"

_OUTCOME = {"content": {FHIR: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}}


def _err(description: str) -> Json:
    return {"description": description, **_OUTCOME}


_COMMON_ERRORS = {
    "400": _err("Bad input (Spine code and diagnostics in the OperationOutcome)."),
    "401": _err("No or unknown bearer token (ACCESS_DENIED)."),
    "403": _err("The caller's role lacks the right (ACCESS_DENIED)."),
    "503": _err("A quorum could not be met (SERVICE_UNAVAILABLE)."),
}
_HEADERS = [
    {
        "name": "Authorization",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "Bearer <token> of a [[user]] in cluster.toml.",
    },
    {
        "name": "X-Request-ID",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
        "description": "A UUID per request; a write retried with the same id is applied once.",
    },
    {
        "name": "X-Correlation-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Echoed in the response.",
    },
]


def _nhs_path() -> Json:
    return {
        "name": "nhs",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]{10}$"},
        "description": "NHS number (ten digits, Modulus 11 check digit).",
    }


def _q(name: str, description: str, required: bool = False) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": {"type": "string"},
        "description": description,
    }


def _op(summary: str, responses: Json, *, params: list[Json] = (), body: str | None = None) -> Json:
    op: Json = {
        "summary": summary,
        "tags": ["records"],
        "parameters": [*_HEADERS, *params],
        "responses": {**responses, **_COMMON_ERRORS},
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {body: {"schema": {"type": "object"} if "json" in body else {}}},
        }
    return op


def _ok(description: str, media: str = FHIR) -> Json:
    return {"description": description, "content": {media: {"schema": {"type": "object"}}}}


def paths() -> Json:
    trace_ok = {
        "description": "One CSV row per input row, streamed as rows are traced.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
    return {
        f"{PDS}/Patient": {
            "post": _op(
                "Create a patient (keeps a valid unused NHS number, else allocates one)",
                {"201": _ok('The Patient, versionId 1, ETag W/"1".'), "415": _err("Not JSON.")},
                body=FHIR,
            ),
            "get": _op(
                "Search patients (family and birthdate at least) on the 2i indexes",
                {"200": _ok("A searchset Bundle, best score first.")},
                params=[
                    _q("family", "Family name; a trailing * matches a prefix.", True),
                    _q("birthdate", "eqYYYY-MM-DD, or geYYYY-MM-DD and leYYYY-MM-DD.", True),
                    _q("given", "Given name (repeatable)."),
                    _q("gender", "male, female, other or unknown."),
                    _q("address-postalcode", "Postcode."),
                    _q("general-practitioner", "GP practice ODS code."),
                    _q("_fuzzy-match", "true: similar-sounding and misspelt family names."),
                    _q("_exact-match", "true: names exactly as given."),
                    _q("_max-results", "1 to 50 (default 1)."),
                ],
            ),
        },
        f"{PDS}/Patient/{{nhs}}": {
            "get": _op(
                "Read a patient",
                {"200": _ok('The Patient; ETag W/"versionId".'), "404": _err("Unknown.")},
                params=[_nhs_path()],
            ),
            "patch": _op(
                "Update a patient with RFC 6902 patches, atomically (If-Match required)",
                {
                    "200": _ok("The updated Patient, versionId n+1."),
                    "404": _err("Unknown patient."),
                    "409": _err("If-Match names an old version (RESOURCE_VERSION_MISMATCH)."),
                    "412": _err("No If-Match (PRECONDITION_FAILED)."),
                    "415": _err("Not application/json-patch+json."),
                },
                params=[
                    _nhs_path(),
                    {
                        "name": "If-Match",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": 'W/"<versionId>" of the version read.',
                    },
                ],
                body="application/json-patch+json",
            ),
        },
        f"{PDS}/Patient/{{nhs}}/_history": {
            "get": _op(
                "A patient's updates, and the conflicts concurrent updates left (Provenance)",
                {"200": _ok("A history Bundle."), "404": _err("Unknown patient.")},
                params=[_nhs_path()],
            )
        },
        "/personal-demographics/batch-trace": {
            "post": _op(
                "Trace a CSV of people against the demographics (streamed both ways)",
                {"200": trace_ok, "415": _err("Not text/csv.")},
                body="text/csv",
            )
        },
        f"{SCR}/Bundle": {
            "post": _op(
                "Upload a Summary Care Record (a document Bundle); it becomes the current one",
                {"201": _ok("Stored."), "404": _err("Unknown patient.")},
                body=FHIR,
            ),
            "get": _op(
                "Read an SCR document (recorded as an AuditEvent first)",
                {"200": _ok("A searchset Bundle with the document.")},
                params=[
                    _q("composition.identifier", "The SCR's id.", True),
                    _q(
                        "composition.subject:Patient.identifier",
                        "https://fhir.nhs.uk/Id/nhs-number|<NHS number>",
                        True,
                    ),
                ],
            ),
        },
        f"{SCR}/DocumentReference": {
            "get": _op(
                "Find a patient's current SCR",
                {"200": _ok("A searchset Bundle of DocumentReference.")},
                params=[_q("patient", "https://fhir.nhs.uk/Id/nhs-number|<NHS number>", True)],
            )
        },
        f"{SCR}/$setPermission": {
            "post": _op(
                "Record a patient's SCR consent (Yes, No or Ask)",
                {"201": _ok("Recorded.")},
                body=FHIR,
            )
        },
        f"{SCR}/AuditEvent": {
            "get": _op(
                "The audit trail of a patient's SCR reads (admin role)",
                {"200": _ok("A searchset Bundle of AuditEvent.")},
                params=[_q("patient", "https://fhir.nhs.uk/Id/nhs-number|<NHS number>", True)],
            )
        },
    }


SCHEMAS: Json = {
    "OperationOutcome": {
        "type": "object",
        "description": "FHIR OperationOutcome; issue[0].details.coding[0].code is the Spine code.",
        "properties": {
            "resourceType": {"type": "string"},
            "issue": {"type": "array", "items": {"type": "object"}},
        },
    }
}
