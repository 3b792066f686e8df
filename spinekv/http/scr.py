"""The Summary Care Record routes (SCR FHIR R4 shapes) under /summary-care-record/FHIR/R4."""

from __future__ import annotations

from aiohttp import web

from ..records.scr.answers import document_reference, read_url
from ..records.scr.permission import permission_parameters
from ..records.scr.service import Reader, ScrService
from .records import Caller, RecordServices, fhir_json, read_json, records_route
from .scr_params import (
    EMERGENCY_REASON_HEADER,
    emergency_reason,
    find_params,
    patient_param,
    read_params,
)

BASE = "/summary-care-record/FHIR/R4"


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}{BASE}"


def _params(request: web.Request) -> dict[str, list[str]]:
    return {name: request.query.getall(name) for name in set(request.query)}


class ScrRoutes:
    def __init__(self, services: RecordServices) -> None:
        self.services = services
        self.scr = ScrService(services.store, services.demographics)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{BASE}/Bundle", self.upload),
            web.get(f"{BASE}/Bundle", self.read),
            web.get(f"{BASE}/DocumentReference", self.find),
            web.post(f"{BASE}/$setPermission", self.set_permission),
            web.get(f"{BASE}/AuditEvent", self.audit),
        ]

    @records_route("scr.write", write=True)
    async def upload(self, request: web.Request, caller: Caller) -> web.Response:
        done = await self.scr.upload(await read_json(request))
        reference = document_reference(
            done.nhs, done.scr_id, done.at_us, done.permission, _base_url(request)
        )
        location = read_url(BASE, done.nhs, done.scr_id)
        return fhir_json(reference, 201, {"Location": location})

    @records_route("scr.read")
    async def find(self, request: web.Request, caller: Caller) -> web.Response:
        nhs = find_params(_params(request))
        return fhir_json(await self.scr.find(nhs, _base_url(request)))

    @records_route("scr.read")
    async def read(self, request: web.Request, caller: Caller) -> web.Response:
        reason = emergency_reason(request.headers.get(EMERGENCY_REASON_HEADER))
        scr_id, nhs = read_params(_params(request))
        reader = Reader(caller.name, caller.role, caller.request_id, reason)
        return fhir_json(await self.scr.read(scr_id, nhs, reader))

    @records_route("scr.consent", write=True)
    async def set_permission(self, request: web.Request, caller: Caller) -> web.Response:
        done = await self.scr.set_permission(await read_json(request), caller.name)
        return fhir_json(permission_parameters(done.nhs, done.code), 201)

    @records_route("audit.read")
    async def audit(self, request: web.Request, caller: Caller) -> web.Response:
        nhs = patient_param(_params(request))
        return fhir_json(await self.scr.audit_trail(nhs, _base_url(request)))
