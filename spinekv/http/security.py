"""Who may call what over HTTP: the middleware that authenticates a request and checks the
permission its route declares (http/api.py), as Riak's security does for its HTTP API.

Every route carries a permission (api.Operation.permission). Riak's permissions
are checked against the user's grants on the route's bucket type and bucket
(`default` for the /buckets/... forms); a route without either is cluster-wide,
and only a grant on `any` covers it. The record API's bucket types are
protected: a grant on `any` does not reach them. The record API's own routes
check their callers themselves (http/records.py), with the same Authenticator.
Every refusal is logged with the client's address and the reason, never a
secret; an error while checking is a refusal too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_urldispatcher import SystemRoute

from ..config import ClusterConfig
from ..security.auth import Authenticator, Refusal
from ..security.grants import permitted
from . import api
from .request import HttpError, json_answer, path_names, text_answer

log = logging.getLogger("spinekv.security")

AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
CHALLENGE = 'Bearer realm="spinekv", Basic realm="spinekv"'
# Unknown paths under these answer the record API's own 404 (an OperationOutcome).
RECORD_PREFIXES = ("/personal-demographics/", "/summary-care-record/")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def protected_types(config: ClusterConfig) -> frozenset[str]:
    """The bucket types only a grant naming them reaches: the record API's."""
    return frozenset({config.records.bucket_type})


def log_refusal(request: web.Request, refusal: Refusal, user: str | None = None) -> None:
    who = f" as {user!r}" if user is not None else ""
    log.warning(
        "refused %s %s from %s%s: %s (%d)",
        request.method,
        request.path,
        request.remote,
        who,
        refusal.reason,
        refusal.status,
    )


def refusal_response(request: web.Request, refusal: Refusal) -> web.Response:
    """The answer to a refusal: JSON under /admin (as the CLI reads it), text elsewhere."""
    answer = json_answer if request.path.startswith("/admin") else text_answer
    response = answer(HttpError(refusal.status, refusal.reason))
    if refusal.status == 401:
        response.headers["WWW-Authenticate"] = CHALLENGE
    if refusal.status == 429:
        response.headers["Retry-After"] = str(refusal.retry_after)
    return response


def route_permission(request: web.Request) -> str:
    route = request.match_info.route
    if isinstance(route, SystemRoute):  # no route matched: a 404 or 405 is coming
        return api.RECORDS if request.path.startswith(RECORD_PREFIXES) else api.USER
    # A route registered some other way than openapi.add_routes needs a user at least.
    return request.app[api.PERMISSION_OF].get(route, api.USER)


def scope(request: web.Request) -> tuple[str | None, str | None]:
    """(bucket type, bucket) a request reaches; (None, None) for a cluster-wide one."""
    names = path_names(request)
    if "type" not in names and "bucket" not in names:
        return None, None
    return names.get("type", "default"), names.get("bucket")


def security_middleware(config: ClusterConfig) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Authenticate and authorise each request before its handler runs (see the docstring)."""
    protected = protected_types(config)

    async def check(request: web.Request, permission: str) -> None:
        user = await request.app[AUTHENTICATOR].authenticate(
            request.headers.get("Authorization"), request.remote
        )
        if permission == api.USER:
            return
        bucket_type, bucket = scope(request)
        needed = ("props", "get") if permission == api.PROPS_READ else (permission,)
        if not any(permitted(user.grants, p, bucket_type, bucket, protected) for p in needed):
            where = "the cluster" if bucket_type is None else bucket_type
            if bucket is not None:
                where += f"/{bucket}"
            raise Refusal(403, f"user {user.name!r} has no {permission} permission on {where}")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        permission = route_permission(request)
        if permission in (api.OPEN, api.RECORDS):
            return await handler(request)
        try:
            await check(request, permission)
        except Refusal as refusal:
            log_refusal(request, refusal)
            return refusal_response(request, refusal)
        except HttpError as error:  # a path that does not decode: refused as the handler would
            answer = json_answer if request.path.startswith("/admin") else text_answer
            return answer(error)
        except Exception:  # never fail open
            log.exception(
                "refused %s %s from %s: the check failed",
                request.method,
                request.path,
                request.remote,
            )
            return refusal_response(request, Refusal(403, "the permission check failed"))
        return await handler(request)

    return middleware
