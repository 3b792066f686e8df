"""The Summary Care Record routes (SCR FHIR R4 shapes) under /summary-care-record/FHIR/R4."""

from __future__ import annotations

from aiohttp import web

from ..records.audit import Reader
from ..records.scr.answers import document_reference, read_url
from ..records.scr.permission import permission_parameters
from . import api
from .records import Caller, RecordServices, fhir_json, read_json, records_route
from .records_openapi import FHIR, fhir_answer, outcome_answer, record_operation, search_param
from .scr_params import (
    EMERGENCY_REASON_HEADER,
    MAX_REASON_LENGTH,
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
        self.scr = services.scr

    def routes(self) -> list[api.Route]:
        return [
            api.post(f"{BASE}/Bundle", self.upload, _UPLOAD),
            api.get(f"{BASE}/Bundle", self.read, _READ),
            api.get(f"{BASE}/DocumentReference", self.find, _FIND),
            api.post(f"{BASE}/$setPermission", self.set_permission, _SET_PERMISSION),
            api.get(f"{BASE}/AuditEvent", self.audit, _AUDIT),
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


# ------------------------------------------------------------------ OpenAPI descriptions

_PATIENT = search_param("patient", "https://fhir.nhs.uk/Id/nhs-number|<NHS number>", required=True)
_UPLOAD = record_operation(
    "Upload a Summary Care Record (a document Bundle); it becomes the current one",
    {"201": fhir_answer("Stored."), "404": outcome_answer("Unknown patient.")},
    body=FHIR,
)
_READ = record_operation(
    "Read an SCR document (recorded as an AuditEvent first)",
    {"200": fhir_answer("A searchset Bundle with the document.")},
    params=(
        search_param("composition.identifier", "The SCR's id.", required=True),
        search_param(
            "composition.subject:Patient.identifier",
            "https://fhir.nhs.uk/Id/nhs-number|<NHS number>",
            required=True,
        ),
        api.header(
            EMERGENCY_REASON_HEADER,
            f"Why the record is read in an emergency (at most {MAX_REASON_LENGTH} characters); "
            "kept in the read's AuditEvent.",
        ),
    ),
)
_FIND = record_operation(
    "Find a patient's current SCR",
    {"200": fhir_answer("A searchset Bundle of DocumentReference.")},
    params=(_PATIENT,),
)
_SET_PERMISSION = record_operation(
    "Record a patient's SCR consent (Yes, No or Ask)", {"201": fhir_answer("Recorded.")}, body=FHIR
)
_AUDIT = record_operation(
    "The audit trail of a patient's SCR reads (admin role)",
    {"200": fhir_answer("A searchset Bundle of AuditEvent.")},
    params=(_PATIENT,),
)
