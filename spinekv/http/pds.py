"""The demographics routes (PDS FHIR R4 shapes) under /personal-demographics/FHIR/R4."""

from __future__ import annotations

import json
import re

from aiohttp import web

from ..records import nhs, search
from ..records.audit import Reader
from ..records.outcome import RecordError, iso_instant, skipped_entry
from . import api
from .records import Caller, RecordServices, fhir_json, read_json, records_route
from .records_openapi import FHIR, fhir_answer, outcome_answer, record_operation, search_param

BASE = "/personal-demographics/FHIR/R4"
_WEAK_ETAG = re.compile(r'^W/"(\d{1,9})"$')


def _etag(resource: dict) -> str:
    return f'W/"{resource["meta"]["versionId"]}"'


def _number(request: web.Request) -> str:
    number = request.match_info["nhs"]
    if not nhs.is_valid(number):
        raise RecordError("INVALID_RESOURCE_ID", f"{number!r} is not a valid NHS number")
    return number


def _reader(caller: Caller) -> Reader:
    return Reader(caller.name, caller.role, caller.request_id)


def _full_url(request: web.Request, number: str) -> str:
    return f"{request.scheme}://{request.host}{BASE}/Patient/{number}"


class PdsRoutes:
    def __init__(self, services: RecordServices) -> None:
        self.services = services
        self.demographics = services.demographics

    def routes(self) -> list[api.Route]:
        return [
            api.post(f"{BASE}/Patient", self.create, _CREATE),
            api.get(f"{BASE}/Patient", self.search, _SEARCH),
            api.get(f"{BASE}/Patient/{{nhs}}", self.read, _READ),
            api.patch(f"{BASE}/Patient/{{nhs}}", self.patch, _PATCH),
            api.get(f"{BASE}/Patient/{{nhs}}/_history", self.history, _HISTORY),
        ]

    @records_route("pds.write", write=True)
    async def create(self, request: web.Request, caller: Caller) -> web.Response:
        body = await read_json(request)
        resource = await self.demographics.create(
            body, request_id=caller.request_id, by=caller.name
        )
        number = resource["id"]
        return fhir_json(
            resource,
            201,
            {"ETag": _etag(resource), "Location": f"{BASE}/Patient/{number}"},
        )

    @records_route("pds.read")
    async def read(self, request: web.Request, caller: Caller) -> web.Response:
        number = _number(request)
        resource = await self.demographics.read_for(_reader(caller), number)
        if resource is None:
            raise RecordError("RESOURCE_NOT_FOUND", f"patient {number} not found")
        return fhir_json(resource, headers={"ETag": _etag(resource)})

    @records_route("pds.read")
    async def search(self, request: web.Request, caller: Caller) -> web.Response:
        criteria = search.parse(
            request.query, lambda name: request.query.getall(name, []), self.demographics.today()
        )
        found = await self.demographics.search(criteria, _reader(caller))
        entries = [
            {
                "fullUrl": _full_url(request, resource["id"]),
                "search": {"score": score},
                "resource": resource,
            }
            for score, resource in found.ranked
        ]
        entries += [skipped_entry(reason) for reason in found.skipped]
        return fhir_json(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "timestamp": iso_instant(self.services.store.now_us()),
                "total": found.total,
                "entry": entries,
            }
        )

    @records_route("pds.write", write=True)
    async def patch(self, request: web.Request, caller: Caller) -> web.Response:
        number = _number(request)
        if_match = request.headers.get("If-Match")
        if if_match is None:
            raise RecordError("PRECONDITION_FAILED", 'If-Match: W/"<versionId>" is required')
        match = _WEAK_ETAG.match(if_match.strip())
        if match is None:
            raise RecordError(
                "PRECONDITION_FAILED", f'If-Match {if_match!r}: expected W/"<versionId>"'
            )
        body = await read_json(request, types=("application/json-patch+json",))
        if not isinstance(body, dict) or "patches" not in body:
            raise RecordError("INVALID_UPDATE", 'the body must be {"patches": [operations]}')
        extra = sorted(set(body) - {"patches"})
        if extra:
            raise RecordError("INVALID_UPDATE", f"unexpected member {extra[0]!r} in the body")
        resource = await self.demographics.patch(
            number,
            int(match.group(1)),
            body["patches"],
            request_id=caller.request_id,
            by=caller.name,
        )
        return fhir_json(resource, headers={"ETag": _etag(resource)})

    @records_route("pds.read")
    async def history(self, request: web.Request, caller: Caller) -> web.Response:
        number = _number(request)
        entries = await self.demographics.history(number)
        return fhir_json(
            {
                "resourceType": "Bundle",
                "type": "history",
                "total": len(entries),
                "entry": [_history_entry(number, e) for e in entries],
            }
        )


def _history_entry(number: str, entry: dict) -> dict:
    """One update (or a merge's recorded conflict) as a FHIR Provenance."""
    provenance: dict = {
        "resourceType": "Provenance",
        "id": entry["id"],
        "target": [{"reference": f"Patient/{number}"}],
        "recorded": iso_instant(entry["at"]),
        "activity": {"coding": [{"code": entry["kind"]}]},
        "agent": [{"who": {"display": entry["by"]}}],
    }
    if entry["kind"] == "conflict":
        provenance["reason"] = [
            {
                "text": f"concurrent updates of {entry['field']}: kept update {entry['kept']}, "
                f"superseded update {entry['lost']}"
            }
        ]
        provenance["entity"] = [{"role": "removal", "what": {"display": entry["field"]}}]
        provenance["extension"] = [
            {"url": "https://spinekv.dev/superseded-value", "valueString": _json(entry["value"])}
        ]
    else:
        provenance["entity"] = [
            {"role": "revision", "what": {"display": f}} for f in entry.get("fields", [])
        ]
    return {"fullUrl": f"Provenance/{entry['id']}", "resource": provenance}


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True)


# ------------------------------------------------------------------ OpenAPI descriptions

_CREATE = record_operation(
    "Create a patient (keeps a valid unused NHS number, else allocates one)",
    {
        "201": fhir_answer('The Patient, versionId 1, ETag W/"1".'),
        "415": outcome_answer("Not JSON."),
    },
    body=FHIR,
)
_SEARCH = record_operation(
    "Search patients (family and birthdate at least) on the 2i indexes (audited)",
    {
        "200": fhir_answer(
            "A searchset Bundle, best score first; a stored record that failed its integrity "
            "check is left out and reported in an OperationOutcome entry (search.mode outcome)."
        )
    },
    params=(
        search_param("family", "Family name; a trailing * matches a prefix.", required=True),
        search_param("birthdate", "eqYYYY-MM-DD, or geYYYY-MM-DD and leYYYY-MM-DD.", required=True),
        search_param("given", "Given name (repeatable)."),
        search_param("gender", "male, female, other or unknown."),
        search_param("address-postalcode", "Postcode."),
        search_param("general-practitioner", "GP practice ODS code."),
        search_param("_fuzzy-match", "true: similar-sounding and misspelt family names."),
        search_param("_exact-match", "true: names exactly as given."),
        search_param("_max-results", "1 to 50 (default 1)."),
    ),
)
_READ = record_operation(
    "Read a patient (recorded as an AuditEvent first)",
    {
        "200": fhir_answer('The Patient; ETag W/"versionId".'),
        "404": outcome_answer("Unknown."),
        "500": outcome_answer("The stored patient failed its integrity check (not transient)."),
    },
)
_PATCH = record_operation(
    "Update a patient with RFC 6902 patches, atomically (If-Match required)",
    {
        "200": fhir_answer("The updated Patient, versionId n+1."),
        "404": outcome_answer("Unknown patient."),
        "409": outcome_answer("If-Match names an old version (RESOURCE_VERSION_MISMATCH)."),
        "412": outcome_answer("No If-Match (PRECONDITION_FAILED)."),
        "415": outcome_answer("Not application/json-patch+json."),
    },
    params=(api.header("If-Match", 'W/"<versionId>" of the version read.', required=True),),
    body="application/json-patch+json",
)
_HISTORY = record_operation(
    "A patient's updates, and the conflicts concurrent updates left (Provenance)",
    {"200": fhir_answer("A history Bundle."), "404": outcome_answer("Unknown patient.")},
)
