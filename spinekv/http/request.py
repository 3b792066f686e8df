"""Reading a Riak-shaped request (path names, flags, timeout, quorums) and its one error type.

Every resource under http/ reads its input here, so a parameter means the same
thing on every path. Where Riak's own resources disagree with one another, the
function says which of them it follows. A refusal is an HttpError, which
`refusing` turns into the response; errors of the pure modules below http/
are given their status in `http_error`, at this edge, and nowhere else.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote_plus

from aiohttp import web

from ..buckets import BadBucketChange, BucketTypeConflict, UnknownBucketType
from ..index import IndexError_
from ..props import QUORUM_NAMES, BucketProps, PropsError
from ..quorum import GetOptions, PutOptions, QuorumValueError, Requested
from ..quorum import delete_options as _delete_options
from ..quorum import get_options as _get_options
from ..quorum import put_options as _put_options

# The longest timeout Erlang's timers (and so Riak) take, in milliseconds.
MAX_TIMEOUT_MS = 2**32 - 1

_QUORUM_TEXT = re.compile(r"[0-9]{1,9}|one|quorum|all|default")
_TIMEOUT_TEXT = re.compile(r"[0-9]{1,10}")
_SYNC_ON_WRITE = ("default", "backend", "one", "all")


class HttpError(Exception):
    """A request refused (4xx, or 503 when the cluster cannot answer); it changed nothing.

    `details` names each bad field where there are several (bucket props).
    """

    def __init__(self, status: int, reason: str, details: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.details = dict(details or {})


def shown(raw: str, limit: int = 60) -> str:
    """A client's value for an error message: quoted, and cut short if it is long."""
    return repr(raw if len(raw) <= limit else raw[:limit] + "...")


# ---------------------------------------------------------------- errors into responses


def http_error(exc: Exception) -> HttpError | None:
    """The HttpError a pure module's refusal of client input stands for; None for any other."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, QuorumValueError | IndexError_ | BadBucketChange):
        return HttpError(400, str(exc))
    if isinstance(exc, PropsError):
        return HttpError(400, f"invalid bucket properties: {exc}", exc.errors)
    if isinstance(exc, UnknownBucketType):
        return HttpError(404, str(exc))
    if isinstance(exc, BucketTypeConflict):
        return HttpError(409, str(exc))
    return None


def text_answer(error: HttpError) -> web.Response:
    """Riak's text/plain refusal, as the object, 2i and listing resources answer."""
    return web.Response(status=error.status, text=error.reason.rstrip("\n") + "\n")


def json_answer(error: HttpError) -> web.Response:
    """{"error": reason, "errors": {field: reason}}, as the props and admin resources answer."""
    body: dict[str, Any] = {"error": error.reason}
    if error.details:
        body["errors"] = error.details
    return web.json_response(body, status=error.status)


H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


def refusing(answer: Callable[[HttpError], web.Response] = text_answer) -> Callable[[H], H]:
    """Decorate a handler so that a refusal (an HttpError, or one `http_error` maps) is answered."""

    def decorate(handler: H) -> H:
        @functools.wraps(handler)
        async def wrapper(*args: Any) -> web.StreamResponse:
            try:
                return await handler(*args)
            except Exception as exc:
                error = http_error(exc)
                if error is None:
                    raise
                return answer(error)

        return wrapper  # type: ignore[return-value]

    return decorate


# ---------------------------------------------------------------- path names


def riak_unquote(segment: str) -> str:
    """A bucket, key, type or index name from its raw URL segment, decoded as Riak does.

    Riak (http_url_encoding = on, its default) decodes path segments with
    mochiweb_util:unquote, '+' as a space, which is how its clients (quote_plus)
    send them.
    """
    try:
        return unquote_plus(segment, errors="strict")
    except UnicodeDecodeError:
        raise HttpError(400, f"path segment {shown(segment)} is not UTF-8 once decoded") from None


_PATH_NAMES = web.RequestKey("path_names", dict)


def path_names(request: web.Request) -> dict[str, str]:
    """A route's {names} (type, bucket, key, field, ...) from the raw path, by riak_unquote.

    aiohttp's match_info has decoded %XX but left '+' alone; read that way one
    bucket would have two names.
    """
    # Parsed once per request: the security middleware and the handler both ask.
    names = request.get(_PATH_NAMES)
    if names is None:
        pattern = request.match_info.route.resource.canonical.split("/")
        raw = request.rel_url.raw_path.split("/")
        names = request[_PATH_NAMES] = {
            part[1:-1]: riak_unquote(segment)
            for part, segment in zip(pattern, raw, strict=True)
            if part.startswith("{") and part.endswith("}")
        }
    return names


# ---------------------------------------------------------------- flags and modes


def _flag_text(query: Mapping[str, str], name: str, *, bucket_default: bool) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    # Riak lower-cases its boolean parameters (string:to_lower) before it reads them.
    words = ("true", "false", "default") if bucket_default else ("true", "false")
    if raw.lower() not in words:
        also = " (or default, the bucket's)" if bucket_default else ""
        raise HttpError(
            400, f"{name} query parameter must be true or false{also}, not {shown(raw)}"
        )
    return raw.lower()


def flag(query: Mapping[str, str], name: str) -> bool:
    """A true/false parameter in any case (returnbody, return_terms, stream, ...); absent is false.

    Riak's object resource reads any returnbody but "true" as false, and its
    index resource refuses anything but true or false; the refusal is taken
    everywhere, so that "1" or "yes" is never silently read as false.
    """
    return _flag_text(query, name, bucket_default=False) == "true"


def bucket_flag(query: Mapping[str, str], name: str) -> bool | None:
    """notfound_ok, basic_quorum, asis: true or false; None (absent, `default`) is the bucket's."""
    text = _flag_text(query, name, bucket_default=True)
    return None if text in (None, "default") else text == "true"


def listing(query: Mapping[str, str], name: str) -> str:
    """keys= or buckets=: "true" for one answer, "stream" for chunks, in any case."""
    raw = query.get(name, "")
    if raw.lower() not in ("true", "stream"):
        raise HttpError(400, f"{name}=true or {name}=stream is required to list {name}")
    return raw.lower()


# ---------------------------------------------------------------- timeout


def count(query: Mapping[str, str], name: str, default: int | None = None) -> int:
    """A non-negative integer query parameter, or `default` when it is absent; 400 when
    it is malformed, or absent without a default."""
    raw = query.get(name)
    if raw is None and default is not None:
        return default
    if raw is None or not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise HttpError(400, f"{name}={shown(raw or '')}: expected a non-negative integer")
    return int(raw)


def timeout(query: Mapping[str, str], default_ms: int) -> float:
    """The request's timeout in seconds: milliseconds, up to Erlang's longest timer.

    0 asks for no timeout, as riak_index reads it and as Riak's clients send it
    for "infinity"; spinekv has no unbounded wait, so 0 gives the node's
    request timeout, the same as leaving the parameter out.
    """
    raw = query.get("timeout")
    if raw is None or raw == "0":
        return default_ms / 1000
    if not _TIMEOUT_TEXT.fullmatch(raw) or int(raw) > MAX_TIMEOUT_MS:
        raise HttpError(
            400,
            f"Bad timeout value {shown(raw)}: expected a non-negative number of milliseconds "
            f"(at most {MAX_TIMEOUT_MS})",
        )
    return int(raw) / 1000


# ---------------------------------------------------------------- quorums


def check_params(query: Mapping[str, str], *, write: bool) -> None:
    """Refuse any parameter Riak reads that is malformed, before the bucket type is looked up."""
    timeout(query, default_ms=1)  # for its checks; the value is read with the options
    for name in QUORUM_NAMES:
        raw = query.get(name)
        if raw is not None and not _QUORUM_TEXT.fullmatch(raw.strip().lower()):
            raise HttpError(
                400, f"{name}={shown(raw)} is not a number or one of one, quorum, all, default"
            )
    raw = query.get("sync_on_write")
    if raw is not None and raw.lower() not in _SYNC_ON_WRITE:
        raise HttpError(
            400,
            f"sync_on_write query parameter must be one of {', '.join(_SYNC_ON_WRITE)}, "
            f"not {shown(raw)}",
        )
    for name in ("notfound_ok", "basic_quorum"):
        bucket_flag(query, name)
    # asis (store the client's clock unchanged) is Riak's replication hook; every spinekv
    # write is a new event, so a write asking for it is refused rather than misapplied.
    if bucket_flag(query, "asis") and write:
        raise HttpError(400, "asis=true is not supported: every write is applied as a new version")


def requested_quorums(query: Mapping[str, str]) -> Requested:
    """The quorum values a request names (r, w, dw, rw, pr, pw, node_confirms)."""
    return {name: query[name] for name in QUORUM_NAMES if name in query}


def get_options(query: Mapping[str, str], props: BucketProps, default_ms: int) -> GetOptions:
    return _get_options(
        props,
        requested_quorums(query),
        timeout(query, default_ms),
        notfound_ok=bucket_flag(query, "notfound_ok"),
        basic_quorum=bucket_flag(query, "basic_quorum"),
    )


def put_options(query: Mapping[str, str], props: BucketProps, default_ms: int) -> PutOptions:
    return _put_options(props, requested_quorums(query), timeout(query, default_ms))


def delete_options(
    query: Mapping[str, str], props: BucketProps, default_ms: int
) -> tuple[GetOptions, PutOptions]:
    return _delete_options(
        props,
        requested_quorums(query),
        timeout(query, default_ms),
        notfound_ok=bucket_flag(query, "notfound_ok"),
        basic_quorum=bucket_flag(query, "basic_quorum"),
    )
