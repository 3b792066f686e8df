"""RecordStore: the record layer's reads, writes and 2i queries on the ring (a thin driver)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .. import object as riak_object
from ..index import Query, merge_results
from ..node.coordinator import BKey, Coordinator, PutOk
from ..node.coverage import CoverageFailed
from ..object import Content
from ..props import BucketProps
from ..quorum import Failed, Found, NotFound, get_options, put_options
from .outcome import RecordError

Term = str | int


@dataclass(frozen=True, slots=True)
class Fetched:
    """A record as read: its live siblings' values (one unless writes raced) and its context."""

    values: list[bytes]
    context: dict[str, int]


class RecordStore:
    """Reads and writes records in one bucket type with its quorums (r, w and dw from its props)."""

    def __init__(
        self,
        coordinator: Coordinator,
        props_of: Callable[[str, str], BucketProps | None],
        now_us: Callable[[], int],
        *,
        bucket_type: str = "records",
        timeout_ms: int = 10_000,
        rng: random.Random | None = None,
    ) -> None:
        self.coordinator = coordinator
        self._props_of = props_of
        self.now_us = now_us
        self.bucket_type = bucket_type
        self.timeout_ms = timeout_ms
        self._rng = rng or random.Random()

    def new_id(self) -> str:
        """A fresh UUID (from the node's RNG, so the simulation stays deterministic)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _props(self, bucket: str) -> BucketProps:
        props = self._props_of(self.bucket_type, bucket)
        if props is None:
            raise RecordError(
                "SERVICE_UNAVAILABLE",
                f"bucket type {self.bucket_type!r} for records is not configured or not active",
            )
        return props

    def _bkey(self, bucket: str, key: str) -> BKey:
        return BKey(self.bucket_type.encode(), bucket.encode(), key.encode())

    async def get(self, bucket: str, key: str) -> Fetched | None:
        """The record's live siblings, or None when there is none (never written, or deleted)."""
        props = self._props(bucket)
        opts = get_options(props, {}, self.timeout_ms / 1000)
        reply = await self.coordinator.get(self._bkey(bucket, key), props, opts)
        if isinstance(reply, Failed):
            raise RecordError("SERVICE_UNAVAILABLE", f"read of {bucket}/{key}: {reply.reason}")
        if isinstance(reply, NotFound):
            return None
        assert isinstance(reply, Found)
        live = riak_object.live_contents(reply.obj)
        if not live:
            return None
        # Siblings in a stable order, so whatever merges them sees the same sequence everywhere.
        values = sorted(c.value for c in live)
        return Fetched(values, dict(riak_object.context(reply.obj)))

    async def put(
        self,
        bucket: str,
        key: str,
        value: bytes,
        context: dict[str, int],
        indexes: Iterable[tuple[str, Term]] = (),
        *,
        content_type: str = "application/json",
    ) -> dict[str, int]:
        """Write `value` over `context` (what the writer read); answers the new context."""
        props = self._props(bucket)
        opts = put_options(props, {}, self.timeout_ms / 1000)
        content = Content(
            value=value,
            content_type=content_type,
            last_modified_us=self.now_us(),
            indexes=tuple(sorted(set(indexes), key=lambda i: (i[0], str(i[1])))),
        )
        result = await self.coordinator.put(self._bkey(bucket, key), props, context, content, opts)
        if isinstance(result, Failed):
            raise RecordError("SERVICE_UNAVAILABLE", f"write of {bucket}/{key}: {result.reason}")
        assert isinstance(result, PutOk)
        return dict(riak_object.context(result.obj))

    async def query(
        self, bucket: str, field: str, start: Term, end: Term | None = None
    ) -> list[tuple[Term, str]]:
        """(term, key) pairs of a 2i exact (end None) or inclusive range query, in term order."""
        props = self._props(bucket)
        q = Query(
            self.bucket_type.encode(),
            bucket.encode(),
            field,
            start,
            start if end is None else end,
            return_terms=True,
        )
        timeout = self.timeout_ms / 1000
        parts = []
        try:
            async with asyncio.timeout(timeout):
                async for part in self.coordinator.coverage.run(
                    "index", q.to_wire(), props.n_val, timeout
                ):
                    parts.append(part)
        except CoverageFailed as exc:
            raise RecordError("SERVICE_UNAVAILABLE", f"index query on {field}: {exc}") from None
        except TimeoutError:
            raise RecordError(
                "SERVICE_UNAVAILABLE", f"index query on {field} timed out after {timeout:g}s"
            ) from None
        results, _ = merge_results(q, parts)
        return [(term, bytes(k).decode()) for term, k in results]
