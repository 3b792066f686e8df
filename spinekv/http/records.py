"""What every record API request shares: bearer auth, request ids, OperationOutcome errors, and
idempotent writes (a write retried with the same X-Request-ID answers its first response).

A caller proves who it is with a bearer token only, checked by the node's Authenticator
(security/auth.py: sources, the failed-authentication limit); its role then says what it
may do. Trust sources never stand in for a token here."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..records.outcome import RecordError, iso_instant, operation_outcome
from ..records.services import RecordServices
from ..records.store import RecordStore
from ..security.auth import Refusal
from .security import AUTHENTICATOR, log_refusal

log = logging.getLogger("spinekv.records")

FHIR_JSON = "application/fhir+json"
REQUESTS_BUCKET = "requests"
# Which roles hold each right.
RIGHTS: dict[str, frozenset[str]] = {
    "pds.read": frozenset({"clinical", "admin", "service"}),
    "pds.write": frozenset({"clinical", "admin"}),
    "scr.read": frozenset({"clinical", "admin"}),
    "scr.write": frozenset({"clinical", "admin"}),
    "scr.consent": frozenset({"clinical", "admin"}),
    "audit.read": frozenset({"admin"}),
    "trace": frozenset({"service", "admin"}),
}
# Response headers a replayed write answers again.
_REPLAYED = ("ETag", "Location", "Content-Type")


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    role: str
    request_id: str


def fhir_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type=FHIR_JSON,
        headers=headers,
    )


def error_response(exc: RecordError) -> web.Response:
    return fhir_json(operation_outcome(exc.code, exc.diagnostics), exc.status)


# Paths under these prefixes answer even the router's own errors as OperationOutcomes.
RECORD_PREFIXES = ("/personal-demographics/", "/summary-care-record/")


@web.middleware
async def records_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """An unknown path or method under the record API is an OperationOutcome too."""
    if not request.path.startswith(RECORD_PREFIXES):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        response = error_response(
            RecordError("METHOD_NOT_ALLOWED", f"{request.method} {request.path}: use {allowed}")
        )
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
    except web.HTTPNotFound:
        response = error_response(
            RecordError("RESOURCE_NOT_FOUND", f"no record API resource at {request.path}")
        )
    return _echo(response, request)


async def _caller(request: web.Request, right: str) -> Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise Refusal(401, "missing Authorization: Bearer <token>")
        user = await request.app[AUTHENTICATOR].authenticate(header, request.remote, trust=False)
        if user.role not in RIGHTS[right]:
            raise Refusal(403, f"role {user.role!r} may not {right}")
    except Refusal as refusal:
        log_refusal(request, refusal)
        raise
    request_id = request.headers.get("X-Request-ID")
    if request_id is None:
        raise RecordError("MISSING_VALUE", "X-Request-ID header is required (a UUID)")
    try:
        # The canonical form, so one UUID written two ways is still one request.
        canonical = str(uuid.UUID(request_id))
    except ValueError:
        raise RecordError("INVALID_VALUE", f"X-Request-ID {request_id!r} is not a UUID") from None
    return Caller(user.name, user.role, canonical)


def _refused(request: web.Request, refusal: Refusal) -> web.Response:
    """A refusal as an OperationOutcome, with the challenge or the wait as headers."""
    code = "TOO_MANY_REQUESTS" if refusal.status == 429 else "ACCESS_DENIED"
    response = error_response(RecordError(code, refusal.reason, refusal.status))
    if refusal.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="spinekv"'
    if refusal.status == 429:
        response.headers["Retry-After"] = str(refusal.retry_after)
    return response


def _echo(response: web.StreamResponse, request: web.Request) -> web.StreamResponse:
    for name in ("X-Request-ID", "X-Correlation-ID"):
        value = request.headers.get(name)
        if value is not None and name not in response.headers:
            response.headers[name] = value
    return response


async def read_json(request: web.Request, *, types: tuple[str, ...] = (FHIR_JSON,)) -> Any:
    """The JSON body, after checking its Content-Type is one of `types` (or application/json)."""
    if request.content_type not in (*types, "application/json"):
        raise RecordError(
            "UNSUPPORTED_MEDIA_TYPE",
            f"Content-Type {request.content_type!r}: expected {' or '.join(types)}",
        )
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError("INVALID_VALUE", f"the body is not valid JSON: {exc}") from None


def _fingerprint(caller: Caller, request: web.Request, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    return f"{caller.name} {request.method} {request.path_qs} {digest}"


Handler = Callable[[Any, web.Request, Caller], Awaitable[web.Response]]


def records_route(right: str, *, write: bool = False) -> Callable[[Handler], Any]:
    """Wrap a record API handler `async def h(self, request, caller)`; `self.services` is needed."""

    def decorate(handler: Handler) -> Any:
        @functools.wraps(handler)
        async def wrapper(self: Any, request: web.Request) -> web.StreamResponse:
            services: RecordServices = self.services
            try:
                caller = await _caller(request, right)
                if write:
                    response = await _idempotent(services, request, caller, handler, self)
                else:
                    response = await handler(self, request, caller)
            except Refusal as refusal:
                response = _refused(request, refusal)
            except RecordError as exc:
                response = error_response(exc)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                response = error_response(RecordError("INVALID_VALUE", exc.reason, exc.status))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("record API request failed")
                response = fhir_json(
                    operation_outcome("SERVICE_UNAVAILABLE", "internal error; see the node log"),
                    500,
                )
            return _echo(response, request)

        return wrapper

    return decorate


async def _idempotent(
    services: RecordServices, request: web.Request, caller: Caller, handler: Handler, owner: Any
) -> web.Response:
    body = await request.read()
    fingerprint = _fingerprint(caller, request, body)
    waiting = services.in_flight.get(caller.request_id)
    if waiting is not None:  # the same write is being served here now: answer what it answers
        await asyncio.shield(waiting)
    stored = await _stored(services.store, caller.request_id)
    if stored is not None:
        return _replay(stored, fingerprint)
    future = asyncio.get_running_loop().create_future()
    services.in_flight[caller.request_id] = future
    try:
        response = await handler(owner, request, caller)
        if 200 <= response.status < 300:
            await _store(services.store, caller.request_id, fingerprint, response)
        return response
    finally:
        services.in_flight.pop(caller.request_id, None)
        future.set_result(None)


async def _stored(store: RecordStore, request_id: str) -> dict | None:
    fetched = await store.get(REQUESTS_BUCKET, request_id)
    if fetched is None:
        return None
    return json.loads(min(fetched.values))  # siblings: the same request answered twice; pick one


def _replay(stored: dict, fingerprint: str) -> web.Response:
    if stored["fingerprint"] != fingerprint:
        raise RecordError(
            "INVALID_VALUE",
            "X-Request-ID was already used for a different request; use a new id per request",
            409,
        )
    headers = {k: v for k, v in stored["headers"].items() if k != "Content-Type"}
    return web.Response(
        status=stored["status"],
        body=stored["body"].encode(),
        content_type=stored["headers"].get("Content-Type", FHIR_JSON),
        headers=headers,
    )


async def _store(store: RecordStore, request_id: str, fingerprint: str, response: web.Response):
    record = {
        "fingerprint": fingerprint,
        "status": response.status,
        "headers": {k: response.headers[k] for k in _REPLAYED if k in response.headers},
        "body": (response.body or b"").decode(),
        "at": iso_instant(store.now_us()),
    }
    try:
        await store.put(REQUESTS_BUCKET, request_id, json.dumps(record).encode(), {})
    except RecordError as exc:
        # The write itself is acknowledged; a retry is still safe because the record layer
        # recognises its own request id (patients keep it in their history).
        log.warning("could not keep the response of request %s: %s", request_id, exc)
