"""Riak's HTTP object headers (pure): parse what a client sends, format what Riak answers.

Every rule here follows riak_kv_wm_object / riak_kv_wm_utils / riak_index and the
webmachine decision flow they run in; where spinekv deliberately differs the
comment says so. Nothing here does I/O or reads a clock: callers pass `now`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote_plus, unquote_plus

from aiohttp import MultipartWriter
from multidict import CIMultiDict

from ..object import Content
from .request import HttpError

META_PREFIX = "x-riak-meta-"
INDEX_PREFIX = "x-riak-index-"
DELETED = "X-Riak-Deleted"

# msgpack, the object codec, holds integers in 64 bits; Riak itself would take bignums.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")
# riak_kv_wm_object splits index values on a comma followed by one whitespace character,
# as Riak's clients join them ("a, b"); "a,b" stays one value, as in Riak.
_INDEX_VALUE_SEP = re.compile(r",\s")
_QUOTED = re.compile(r'"([^"]*)"')
# The API-version-2 link forms riak_kv_wm_object accepts (also under /types/T/: Riak parses
# typed requests' Link headers with these same two expressions). Unanchored, as re:run is.
_BUCKET_LINK = re.compile(r'</buckets/([^/]+)>; ?rel="([^"]+)"')
_KEY_LINK = re.compile(r'</buckets/([^/]+)/keys/([^/]+)>; ?riaktag="([^"]+)"')
LINK_FORM = (
    'Invalid Link header. Links must be of the form\n</buckets/BUCKET/keys/KEY>; riaktag="TAG"'
)


def text_value(name: str, value: str) -> str:
    """A header value that can be stored and sent back.

    aiohttp decodes header bytes that are not UTF-8 to lone surrogates, which
    neither msgpack nor a response can carry.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise HttpError(400, f"the {name} header is not valid UTF-8") from None
    return value


# ---------------------------------------------------------------- content type


def parse_content_type(raw: str | None) -> str:
    """The stored content type: the media type, plus its charset when one is given.

    Riak keeps only the charset of the parameters (extract_content_type) and
    answers 400 without the header, 415 for one that is not a media type.
    """
    if raw is None or not raw.strip():
        raise HttpError(400, "Missing Content-Type request header")
    text_value("Content-Type", raw)
    media, *params = (part.strip() for part in raw.split(";"))
    if not _MEDIA_TYPE.fullmatch(media):
        raise HttpError(
            415, f'"{media[:60]}" is not a valid media type for the Content-type header.'
        )
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        value = value.strip().strip('"')
        if name.strip().lower() == "charset" and value:
            charset = value
    return media if charset is None else f"{media}; charset={charset}"


# ---------------------------------------------------------------- user metadata


def parse_meta(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """X-Riak-Meta-* headers as (name, value), sorted; a repeated header's values joined.

    Names keep the case they were sent in; repeats are joined with ", " as
    Riak's HTTP server (mochiweb) does before Riak sees them.
    """
    merged: dict[str, tuple[str, str]] = {}
    for header, value in headers:
        if not header.lower().startswith(META_PREFIX):
            continue
        text_value(header, value)
        name = header[len(META_PREFIX) :]
        if name.lower() in merged:
            first, before = merged[name.lower()]
            merged[name.lower()] = (first, f"{before}, {value}")
        else:
            merged[name.lower()] = (name, value)
    return tuple(sorted(merged.values()))


# ---------------------------------------------------------------- secondary indexes


def _index_term(field: str, raw: str) -> str | int | None:
    """The parsed term, or None when the value does not parse for the field's type."""
    if field.endswith("_bin"):
        return raw
    if not _INTEGER.fullmatch(raw):
        return None
    value = int(raw)
    return value if INT_MIN <= value <= INT_MAX else None


def parse_indexes(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str | int], ...]:
    """X-Riak-Index-NAME_bin / NAME_int headers as sorted, distinct (name, term) pairs.

    Names are lower-cased and must end in _bin or _int (Riak's riak_index:parse_fields);
    _int terms must be integers. Every bad field or value is reported, in Riak's words.
    """
    pairs: set[tuple[str, str | int]] = set()
    errors: set[str] = set()
    for header, value in headers:
        if not header.lower().startswith(INDEX_PREFIX):
            continue
        text_value(header, value)
        field = header[len(INDEX_PREFIX) :].lower()
        # Riak also accepts $bucket and $key here; they are query-only indexes in spinekv.
        if not (field.endswith(("_bin", "_int")) and len(field) > 4):
            errors.add(f"Unknown field type for field: '{field[:60]}'.")
            continue
        for raw in _INDEX_VALUE_SEP.split(value):
            term = _index_term(field, raw)
            if term is None:
                errors.add(f"Could not parse field '{field[:60]}', value '{raw[:60]}'.")
            else:
                pairs.add((field, term))
    if errors:
        raise HttpError(400, "\n".join(sorted(errors)))
    return tuple(sorted(pairs))


def index_headers(indexes: Iterable[tuple[str, str | int]]) -> list[tuple[str, str]]:
    """One X-Riak-Index-NAME header per index, its values comma-separated."""
    grouped: dict[str, list[str]] = {}
    for field, term in indexes:
        grouped.setdefault(field, []).append(str(term))
    return [(f"X-Riak-Index-{field}", ", ".join(terms)) for field, terms in grouped.items()]


# ---------------------------------------------------------------- links


def _unquote_link_part(text: str) -> str:
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        raise HttpError(400, LINK_FORM) from None


def parse_links(values: Iterable[str], bucket: str) -> tuple[tuple[str, str, str], ...]:
    """(bucket, key, tag) of each riaktag link in Link headers, in the order sent.

    As in Riak, the only other link allowed is the object's own `</buckets/B>;
    rel="up"`, which is implied and not stored; anything else refuses the write.
    """
    bucket_links: list[tuple[str, str]] = []
    links: list[tuple[str, str, str]] = []
    for value in values:
        text_value("Link", value)
        # string:tokens in Riak: empty pieces between commas are skipped.
        for piece in (p for p in value.split(",") if p):
            if found := _BUCKET_LINK.search(piece):
                bucket_links.append((_unquote_link_part(found[1]), _unquote_link_part(found[2])))
            elif found := _KEY_LINK.search(piece):
                links.append(tuple(_unquote_link_part(part) for part in found.groups()))
            else:
                raise HttpError(400, LINK_FORM)
    if bucket_links not in ([], [(bucket, "up")]):
        raise HttpError(400, LINK_FORM)
    return tuple(links)


def format_links(bucket: str, links: Iterable[tuple[str, str, str]]) -> str:
    """The Link header of an object: its links, then the `up` link to its bucket.

    Riak writes the /buckets/ form for typed buckets as well (its link formatter
    has no /types/ form), and its Python client parses only that form.
    """
    parts = [
        f'</buckets/{quote_plus(b)}/keys/{quote_plus(k)}>; riaktag="{quote_plus(t)}"'
        for b, k, t in links
    ]
    parts.append(f'</buckets/{quote_plus(bucket)}>; rel="up"')
    return ", ".join(parts)


# ---------------------------------------------------------------- dates and etags


def http_date(us: int) -> str:
    return format_datetime(datetime.fromtimestamp(us / 1_000_000, UTC), usegmt=True)


def parse_http_date(raw: str | None) -> int | None:
    """Seconds since the epoch of an HTTP date, or None for none or a malformed one.

    Webmachine ignores a conditional date it cannot parse, so callers do too.
    """
    if raw is None:
        return None
    try:
        when = parsedate_to_datetime(raw)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return int(when.timestamp())
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


def sibling_etag(vclock: str) -> str:
    """The ETag of an object with siblings: derived from its causal context, as Riak does."""
    digest = hashlib.blake2b(vclock.encode("ascii"), digest_size=12).digest()
    return base64.b32encode(digest).decode().rstrip("=").lower()


# ---------------------------------------------------------------- object headers


def content_headers(content: Content, bucket: str, *, part: bool = False) -> list[tuple[str, str]]:
    """The headers describing one sibling, on a response or (part=True) a multipart part.

    Riak quotes the ETag of a response but not the Etag line of a multipart part.
    """
    etag = content.vtag if part else f'"{content.vtag}"'
    headers = [
        ("Content-Type", content.content_type),
        ("Link", format_links(bucket, content.links)),
        ("Etag" if part else "ETag", etag),
        ("Last-Modified", http_date(content.last_modified_us)),
    ]
    if content.deleted:
        headers.append((DELETED, "true"))
    headers += [(f"X-Riak-Meta-{name}", value) for name, value in content.meta]
    headers += index_headers(content.indexes)
    return headers


async def multipart_body(contents: Iterable[Content], bucket: str) -> tuple[str, bytes]:
    """(Content-Type, body) of a multipart/mixed answer with one part per sibling.

    aiohttp's MultipartWriter lays it out and picks the boundary. The body opens
    with a line break, as Riak's does: Riak's clients find a part only where a
    line break comes before its delimiter.
    """
    writer = MultipartWriter("mixed")
    for content in contents:
        writer.append(content.value, CIMultiDict(content_headers(content, bucket, part=True)))
    return writer.content_type, b"\r\n" + await writer.as_bytes()


def prefers_multipart(accept: str | None) -> bool:
    """Whether a 300 answer should be multipart/mixed rather than text/plain.

    Webmachine's choice between the two types Riak offers, in that order: the
    acceptable types by falling q, the first offer each one matches. Where
    nothing matches Riak answers 406; spinekv sends the plain list instead.
    """
    offers = ("text/plain", "multipart/mixed")
    ranked = []
    for position, item in enumerate((accept or "*/*").split(",")):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:  # NaN and q=0 both fall out here
            ranked.append((-q, position, media.lower()))
    for _, _, media in sorted(ranked):
        for offer in offers:
            major = offer.split("/")[0]
            if media in (offer, "*/*", f"{major}/*"):
                return offer == "multipart/mixed"
    return False


# ---------------------------------------------------------------- conditional requests


@dataclass(frozen=True)
class Version:
    """What a conditional request is checked against: the current object's ETag and time."""

    etag: str
    last_modified: int  # seconds since the epoch: HTTP dates have no finer grain


@dataclass(frozen=True)
class Conditions:
    """A request's If-* headers (None where absent)."""

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    if_unmodified_since: str | None = None

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> Conditions:
        return cls(
            headers.get("If-Match"),
            headers.get("If-None-Match"),
            headers.get("If-Modified-Since"),
            headers.get("If-Unmodified-Since"),
        )

    def any(self) -> bool:
        return any(
            h is not None
            for h in (
                self.if_match,
                self.if_none_match,
                self.if_modified_since,
                self.if_unmodified_since,
            )
        )


@dataclass(frozen=True)
class Refusal:
    """A precondition that did not hold: 304 Not Modified or 412 Precondition Failed."""

    status: int
    reason: str


def check_conditions(
    conditions: Conditions, current: Version | None, *, method: str, now: int
) -> Refusal | None:
    """Webmachine's conditional-request steps (G8-L17) as riak_kv_wm_object runs them.

    `current` is None when the object does not exist (missing or deleted). For
    an object with siblings it carries the context-derived ETag and the newest
    sibling's time, as Riak's generate_etag / last_modified do. A failed
    If-None-Match answers 304 to GET and HEAD and 412 to writes; a request not
    modified since If-Modified-Since answers 304 whatever its method, as
    webmachine does. Unparseable dates are ignored.
    """
    if current is None:
        if conditions.if_match is not None:
            return Refusal(412, "precondition failed: If-Match, and the object does not exist")
        return None
    if_match = conditions.if_match
    if (
        if_match is not None
        and if_match.strip() != "*"
        and current.etag not in _QUOTED.findall(if_match)
    ):
        return Refusal(412, f'precondition failed: If-Match, and the ETag is now "{current.etag}"')
    unmodified_since = parse_http_date(conditions.if_unmodified_since)
    if unmodified_since is not None and current.last_modified > unmodified_since:
        return Refusal(412, "precondition failed: modified since If-Unmodified-Since")
    if_none_match = conditions.if_none_match
    if if_none_match is not None and (
        if_none_match.strip() == "*" or current.etag in _QUOTED.findall(if_none_match)
    ):
        if method in ("GET", "HEAD"):
            return Refusal(304, "not modified")
        return Refusal(412, "precondition failed: If-None-Match, and the object exists")
    modified_since = parse_http_date(conditions.if_modified_since)
    if (
        modified_since is not None
        and modified_since <= now
        and current.last_modified <= modified_since
    ):
        return Refusal(304, "not modified")
    return None
