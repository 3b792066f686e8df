"""The demographics routes (PDS FHIR R4 shapes) under /personal-demographics/FHIR/R4."""

from __future__ import annotations

import json
import re

from aiohttp import web

from ..records import nhs, search
from ..records.outcome import RecordError, iso_instant
from .records import Caller, RecordServices, fhir_json, read_json, records_route

BASE = "/personal-demographics/FHIR/R4"
_WEAK_ETAG = re.compile(r'^W/"(\d{1,9})"$')


def _etag(resource: dict) -> str:
    return f'W/"{resource["meta"]["versionId"]}"'


def _number(request: web.Request) -> str:
    number = request.match_info["nhs"]
    if not nhs.is_valid(number):
        raise RecordError("INVALID_RESOURCE_ID", f"{number!r} is not a valid NHS number")
    return number


def _full_url(request: web.Request, number: str) -> str:
    return f"{request.scheme}://{request.host}{BASE}/Patient/{number}"


class PdsRoutes:
    def __init__(self, services: RecordServices) -> None:
        self.services = services
        self.demographics = services.demographics

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{BASE}/Patient", self.create),
            web.get(f"{BASE}/Patient", self.search),
            web.get(f"{BASE}/Patient/{{nhs}}", self.read),
            web.patch(f"{BASE}/Patient/{{nhs}}", self.patch),
            web.get(f"{BASE}/Patient/{{nhs}}/_history", self.history),
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
        resource = await self.demographics.read(number)
        if resource is None:
            raise RecordError("RESOURCE_NOT_FOUND", f"patient {number} not found")
        return fhir_json(resource, headers={"ETag": _etag(resource)})

    @records_route("pds.read")
    async def search(self, request: web.Request, caller: Caller) -> web.Response:
        criteria = search.parse(
            request.query, lambda name: request.query.getall(name, []), self.demographics.today()
        )
        total, ranked = await self.demographics.search(criteria)
        entries = [
            {
                "fullUrl": _full_url(request, resource["id"]),
                "search": {"score": score},
                "resource": resource,
            }
            for score, resource in ranked
        ]
        return fhir_json(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "timestamp": iso_instant(self.services.store.now_us()),
                "total": total,
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
