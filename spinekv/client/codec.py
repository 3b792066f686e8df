"""Riak's HTTP shapes for the client (pure): paths, query strings, object headers, streams."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote

from .errors import ServerError
from .objects import IndexEntry, Link, Sibling

VCLOCK = "X-Riak-Vclock"
META_PREFIX = "x-riak-meta-"
INDEX_PREFIX = "x-riak-index-"
DEFAULT_TYPE = "default"


# ---------------------------------------------------------------- paths and queries


def _seg(text: str | int) -> str:
    # safe="" so a '/' inside a bucket or key cannot split the path.
    return quote(str(text), safe="")


def bucket_path(bucket_type: str, bucket: str) -> str:
    """/buckets/B, or /types/T/buckets/B for any type but `default` (as Riak's clients do)."""
    prefix = "" if bucket_type == DEFAULT_TYPE else f"/types/{_seg(bucket_type)}"
    return f"{prefix}/buckets/{_seg(bucket)}"


def object_path(bucket_type: str, bucket: str, key: str | None = None) -> str:
    """The object URL, or the bucket's POST-a-new-key URL when `key` is None."""
    base = bucket_path(bucket_type, bucket) + "/keys"
    return base if key is None else f"{base}/{_seg(key)}"


def buckets_path(bucket_type: str) -> str:
    return "/buckets" if bucket_type == DEFAULT_TYPE else f"/types/{_seg(bucket_type)}/buckets"


def type_props_path(bucket_type: str) -> str:
    return f"/types/{_seg(bucket_type)}/props"


def counter_path(bucket: str, key: str) -> str:
    # Riak's legacy counters live in the default type only.
    return f"/buckets/{_seg(bucket)}/counters/{_seg(key)}"


def index_path(
    bucket_type: str, bucket: str, index: str, start: str | int, end: str | int | None
) -> str:
    path = f"{bucket_path(bucket_type, bucket)}/index/{_seg(index)}/{_seg(start)}"
    return path if end is None else f"{path}/{_seg(end)}"


def query(params: Mapping[str, Any]) -> dict[str, str]:
    """Query parameters as Riak reads them: None left out, booleans as true/false."""
    out = {}
    for name, value in params.items():
        if value is None:
            continue
        out[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def key_from_location(location: str) -> str:
    return unquote(location.rstrip("/").rsplit("/", 1)[-1])


# ---------------------------------------------------------------- object headers


def parse_content_type(value: str) -> tuple[str, str | None]:
    """'text/plain; charset="utf-8"' -> ('text/plain', 'utf-8')."""
    main, *params = value.split(";")
    charset = None
    for param in params:
        name, _, raw = param.partition("=")
        if name.strip().lower() == "charset":
            charset = raw.strip().strip('"') or None
    return main.strip(), charset


def format_content_type(content_type: str, charset: str | None) -> str:
    return content_type if charset is None else f"{content_type}; charset={charset}"


_LINK = re.compile(r"<([^>]*)>([^<]*)")
_RIAKTAG = re.compile(r'riaktag\s*=\s*"([^"]*)"')
_LINK_TARGETS = (
    re.compile(r"^/(?:types/[^/]+/)?buckets/([^/]+)/keys/([^/]+)$"),
    re.compile(r"^/riak/([^/]+)/([^/]+)$"),  # Riak's pre-1.0 form, still sent by old servers
)


def parse_links(values: Iterable[str]) -> list[Link]:
    """(bucket, key, tag) of every riaktag link in Link header values; rel=up is skipped."""
    links = []
    for value in values:
        for target, params in _LINK.findall(value):
            tag = _RIAKTAG.search(params)
            if tag is None:
                continue
            for form in _LINK_TARGETS:
                found = form.match(target)
                if found:
                    links.append((unquote(found[1]), unquote(found[2]), unquote(tag[1])))
                    break
    return links


def format_links(links: Iterable[Link]) -> str:
    # The /buckets form, as Riak's own clients send it; the object's type is implied.
    return ", ".join(f'<{object_path(DEFAULT_TYPE, b, k)}>; riaktag="{tag}"' for b, k, tag in links)


def decode_index_value(name: str, raw: str) -> str | int:
    if name.lower().endswith("_int"):
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw


def parse_index_header(name: str, value: str) -> set[IndexEntry]:
    return {(name, decode_index_value(name, v.strip())) for v in value.split(",") if v.strip()}


def parse_http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def sibling_from(headers: Iterable[tuple[str, str]], value: bytes) -> Sibling | None:
    """The sibling an object response (or one multipart part) describes; None for a tombstone."""
    sibling = Sibling(value=value)
    links: list[str] = []
    for raw_name, header in headers:
        name = raw_name.lower()
        if name == "content-type":
            sibling.content_type, sibling.charset = parse_content_type(header)
        elif name == "etag":
            sibling.etag = header.strip().strip('"')
        elif name == "last-modified":
            sibling.last_modified = parse_http_date(header)
        elif name == "link":
            links.append(header)
        elif name.startswith(META_PREFIX):
            sibling.meta[name[len(META_PREFIX) :]] = header
        elif name.startswith(INDEX_PREFIX):
            sibling.indexes |= parse_index_header(name[len(INDEX_PREFIX) :], header)
        elif name == "x-riak-deleted" and header.strip().lower() == "true":
            return None
    sibling.links = parse_links(links)
    return sibling


def content_headers(sibling: Sibling) -> list[tuple[str, str]]:
    """The request headers that store `sibling`'s metadata."""
    headers = [("Content-Type", format_content_type(sibling.content_type, sibling.charset))]
    headers += [(f"X-Riak-Meta-{name}", value) for name, value in sorted(sibling.meta.items())]
    by_index: dict[str, list[str]] = {}
    for name, value in sorted(sibling.indexes, key=lambda e: (e[0], str(e[1]))):
        by_index.setdefault(name, []).append(str(value))
    headers += [(f"X-Riak-Index-{name}", ", ".join(vs)) for name, vs in by_index.items()]
    if sibling.links:
        headers.append(("Link", format_links(sibling.links)))
    return headers


# ---------------------------------------------------------------- JSON answers


def index_results(data: Mapping[str, Any], index: str) -> list[Any]:
    """Keys, or (term, key) pairs from Riak's {"results": [{term: key}, ...]}."""
    if "results" in data:
        return [
            (decode_index_value(index, term), key)
            for item in data["results"]
            for term, key in item.items()
        ]
    return list(data.get("keys", []))


class JsonStream:
    """Splits a body of concatenated JSON objects ({"keys": [...]}{"keys": [...]}) as it arrives."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._json = json.JSONDecoder()

    def feed(self, chunk: bytes) -> list[Any]:
        self._buffer += self._decoder.decode(chunk)
        found = []
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                return found
            try:
                item, end = self._json.raw_decode(text)
            except json.JSONDecodeError:
                self._buffer = text  # incomplete: wait for more
                return found
            found.append(item)
            self._buffer = text[end:]

    def close(self) -> None:
        tail = self._buffer + self._decoder.decode(b"", final=True)
        if tail.strip():
            raise ServerError(f"stream ended inside a JSON object: {tail[:80]!r}")
