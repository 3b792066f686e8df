"""What the client hands back: objects with their siblings and causal context, index pages."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import SiblingsError

Link = tuple[str, str, str]  # (bucket, key, tag); the bucket type is the object's own
IndexEntry = tuple[str, str | int]  # (name ending in _bin or _int, value)


@dataclass
class Sibling:
    """One version of an object's contents: a value and its metadata.

    `meta` keys come back lower-case: they travel as HTTP header names, which are
    case-insensitive.
    """

    value: bytes = b""
    content_type: str = "application/octet-stream"
    charset: str | None = None
    meta: dict[str, str] = field(default_factory=dict)
    indexes: set[IndexEntry] = field(default_factory=set)
    links: list[Link] = field(default_factory=list)
    etag: str | None = None  # the server's vtag, naming this sibling
    last_modified: float | None = None  # seconds since the epoch (HTTP: whole seconds)

    @property
    def text(self) -> str:
        return self.value.decode(self.charset or "utf-8")

    @property
    def json(self) -> Any:
        return json.loads(self.value)


# A resolver gets every sibling and returns the one to keep, or a merged value
# (bytes or str) that takes the metadata of the newest sibling.
Resolver = Callable[[list[Sibling]], "Sibling | bytes | str"]


def _newest_key(s: Sibling) -> tuple[float, str]:
    # The etag breaks ties so every client picks the same sibling.
    return (s.last_modified or 0.0, s.etag or "")


def last_written_resolver(siblings: list[Sibling]) -> Sibling:
    """Keep the sibling written last (by Last-Modified, whole seconds over HTTP)."""
    return max(siblings, key=_newest_key)


def apply_resolver(siblings: Sequence[Sibling], resolver: Resolver) -> Sibling:
    """The single sibling `resolver` makes of `siblings`."""
    chosen = resolver(list(siblings))
    if isinstance(chosen, Sibling):
        return chosen
    if isinstance(chosen, str):
        chosen = chosen.encode("utf-8")
    if isinstance(chosen, bytes | bytearray):
        base = max(siblings, key=_newest_key)
        return replace(
            base,
            value=bytes(chosen),
            meta=dict(base.meta),
            indexes=set(base.indexes),
            links=list(base.links),
            etag=None,
        )
    raise TypeError(f"a resolver must return a Sibling, bytes or str, not {type(chosen).__name__}")


class Obj:
    """A key's contents as last read or written, with the causal context to write back.

    `siblings` holds every concurrent version; with exactly one, the shortcuts
    (`value`, `content_type`, `meta`, `indexes`, `links`) read and change it, and
    with several they raise SiblingsError until a resolver (or an assignment to
    `siblings`) leaves one. `context` (alias `vclock`) is the opaque X-Riak-Vclock:
    storing the object sends it back, so the write supersedes exactly what was read.
    """

    def __init__(
        self,
        bucket: str,
        key: str | None,
        bucket_type: str = "default",
        siblings: list[Sibling] | None = None,
        context: str | None = None,
        *,
        exists: bool = False,
        client: Any = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.bucket = bucket
        self.key = key
        self.bucket_type = bucket_type
        self.siblings: list[Sibling] = siblings if siblings is not None else []
        self.context = context
        self.exists = exists
        self.resolver = resolver
        self._client = client

    def __repr__(self) -> str:
        where = f"{self.bucket_type}/{self.bucket}/{self.key}"
        return f"<Obj {where} exists={self.exists} siblings={len(self.siblings)}>"

    @property
    def vclock(self) -> str | None:
        return self.context

    @vclock.setter
    def vclock(self, value: str | None) -> None:
        self.context = value

    # ---------------------------------------------------------- the single sibling

    def _single(self) -> Sibling | None:
        if len(self.siblings) > 1:
            raise SiblingsError(len(self.siblings))
        return self.siblings[0] if self.siblings else None

    def _writable(self) -> Sibling:
        """The one sibling to change, created when the object has none yet."""
        sibling = self._single()
        if sibling is None:
            sibling = Sibling()
            self.siblings.append(sibling)
        return sibling

    @property
    def value(self) -> bytes | None:
        """The value, or None when the key holds nothing."""
        sibling = self._single()
        return sibling.value if sibling is not None else None

    @value.setter
    def value(self, value: bytes | str) -> None:
        sibling = self._writable()
        if isinstance(value, str):
            sibling.value = value.encode("utf-8")
            sibling.charset = "utf-8"
            if sibling.content_type == "application/octet-stream":
                sibling.content_type = "text/plain"
        else:
            sibling.value = bytes(value)

    @property
    def text(self) -> str | None:
        sibling = self._single()
        return sibling.text if sibling is not None else None

    @property
    def json(self) -> Any:
        sibling = self._single()
        return sibling.json if sibling is not None else None

    @json.setter
    def json(self, data: Any) -> None:
        sibling = self._writable()
        sibling.value = json.dumps(data).encode("utf-8")
        sibling.content_type = "application/json"
        sibling.charset = None

    @property
    def content_type(self) -> str:
        return self._writable().content_type

    @content_type.setter
    def content_type(self, value: str) -> None:
        self._writable().content_type = value

    @property
    def charset(self) -> str | None:
        return self._writable().charset

    @charset.setter
    def charset(self, value: str | None) -> None:
        self._writable().charset = value

    @property
    def meta(self) -> dict[str, str]:
        return self._writable().meta

    @meta.setter
    def meta(self, value: dict[str, str]) -> None:
        self._writable().meta = dict(value)

    @property
    def indexes(self) -> set[IndexEntry]:
        return self._writable().indexes

    @indexes.setter
    def indexes(self, value: set[IndexEntry]) -> None:
        self._writable().indexes = set(value)

    @property
    def links(self) -> list[Link]:
        return self._writable().links

    @links.setter
    def links(self, value: list[Link]) -> None:
        self._writable().links = list(value)

    @property
    def etag(self) -> str | None:
        sibling = self._single()
        return sibling.etag if sibling is not None else None

    @property
    def last_modified(self) -> float | None:
        sibling = self._single()
        return sibling.last_modified if sibling is not None else None

    def add_index(self, name: str, value: str | int) -> Obj:
        self.indexes.add((name, value))
        return self

    def remove_index(self, name: str, value: str | int | None = None) -> Obj:
        """Drop one entry, or every entry of index `name` when no value is given."""
        sibling = self._writable()
        sibling.indexes = {
            (n, v) for n, v in sibling.indexes if n != name or (value is not None and v != value)
        }
        return self

    def add_link(self, bucket: str, key: str, tag: str) -> Obj:
        self.links.append((bucket, key, tag))
        return self

    # ---------------------------------------------------------- siblings

    def resolve(self, resolver: Resolver | None = None) -> Obj:
        """Leave one sibling, chosen by `resolver` (or the object's own); the context stays.

        Storing the object afterwards supersedes every sibling it had.
        """
        chosen = resolver or self.resolver
        if chosen is None:
            raise ValueError("no resolver given and none set for this object")
        if len(self.siblings) > 1:
            self.siblings = [apply_resolver(self.siblings, chosen)]
        return self

    # ---------------------------------------------------------- round trips

    def _bound(self) -> Any:
        if self._client is None:
            raise RuntimeError("this object is not bound to a client: use client.put(obj)")
        return self._client

    def store(self, **options: Any) -> Any:
        """Write this object back with its context (awaitable with AsyncClient)."""
        return self._bound().put(self, **options)

    def delete(self, **options: Any) -> Any:
        """Delete the key with this object's context (awaitable with AsyncClient)."""
        return self._bound().delete(
            self.bucket, self.key, bucket_type=self.bucket_type, context=self.context, **options
        )

    def reload(self, **options: Any) -> Any:
        """Fetch the key again (a new Obj; awaitable with AsyncClient)."""
        return self._bound().get(
            self.bucket, self.key, bucket_type=self.bucket_type, resolver=self.resolver, **options
        )


@dataclass
class IndexPage:
    """One page of a secondary-index query: keys, or (term, key) pairs with return_terms."""

    results: list[Any]
    continuation: str | None = None
    _client: Any = field(default=None, repr=False)
    _query: dict[str, Any] = field(default_factory=dict, repr=False)

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def has_next_page(self) -> bool:
        return self.continuation is not None

    def next_page(self) -> Any:
        """The following page (awaitable with AsyncClient)."""
        if self.continuation is None:
            raise ValueError("this is the last page")
        return self._client.get_index(**{**self._query, "continuation": self.continuation})


@dataclass(frozen=True)
class PreflistEntry:
    """One replica of a key: its partition, the node holding it, and whether it is a primary."""

    partition: int
    node: str
    primary: bool
