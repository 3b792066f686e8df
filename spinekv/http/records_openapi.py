"""What every record API operation shares in the OpenAPI document: headers, errors, schemas."""

from __future__ import annotations

from collections.abc import Sequence

from . import api

Json = api.Json

FHIR = "application/fhir+json"

PARAMETERS: Json = {
    "nhs": api.path(
        "nhs",
        "NHS number (ten digits, Modulus 11 check digit).",
        {"type": "string", "pattern": "^[0-9]{10}$"},
    ),
    "authorization": api.header(
        "Authorization", "Bearer <token> of a [[user]] in cluster.toml.", required=True
    ),
    "request_id": api.header(
        "X-Request-ID",
        "A UUID per request; a write retried with the same id is applied once.",
        {"type": "string", "format": "uuid"},
        required=True,
    ),
    "correlation_id": api.header("X-Correlation-ID", "Echoed in the response."),
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


def outcome_answer(description: str) -> Json:
    """An error answer: an OperationOutcome."""
    return {
        "description": description,
        "content": {FHIR: {"schema": api.schema("OperationOutcome")}},
    }


def fhir_answer(description: str, media: str = FHIR) -> Json:
    """A success answer: a FHIR resource (or another JSON object)."""
    return {"description": description, "content": {media: {"schema": {"type": "object"}}}}


def search_param(name: str, description: str, *, required: bool = False) -> Json:
    """A FHIR search parameter (a query string value)."""
    return api.query(name, {"type": "string"}, description, required=required)


_COMMON_ERRORS = {
    "400": outcome_answer("Bad input (Spine code and diagnostics in the OperationOutcome)."),
    "401": outcome_answer("No or unknown bearer token (ACCESS_DENIED)."),
    "403": outcome_answer("The caller's role lacks the right (ACCESS_DENIED)."),
    "503": outcome_answer("A quorum could not be met (SERVICE_UNAVAILABLE)."),
}


def record_operation(
    summary: str,
    responses: Json,
    *,
    params: Sequence[str | Json] = (),
    body: str | None = None,
) -> api.Operation:
    """A record API operation: it takes the common headers and may answer the common errors.

    `body` is the request body's media type, when the operation takes one.
    """
    request_body = None
    if body is not None:
        kind = {"type": "object"} if "json" in body else {"type": "string"}
        request_body = {"required": True, "content": {body: {"schema": kind}}}
    return api.Operation(
        permission=api.RECORDS,
        summary=summary,
        tag="records",
        responses={**responses, **_COMMON_ERRORS},
        params=("authorization", "request_id", "correlation_id", *params),
        body=request_body,
    )
