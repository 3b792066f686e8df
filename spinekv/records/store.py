"""RecordStore: the record layer's reads, writes and 2i queries on the ring (a thin driver).

Values in the sealed buckets (patients, SCRs, consent) carry a keyed MAC (integrity.py): put
seals them, get verifies every sibling and answers only what verified, so a record written
behind the record layer's back (through the KV API, or straight to a replica) is an error that
names it, never data.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .. import object as riak_object
from ..index import Query, merge_results
from ..node.coordinator import BKey, Coordinator, PutOk
from ..node.coverage import CoverageFailed
from ..object import Content
from ..props import BucketProps
from ..quorum import Failed, Found, NotFound, get_options, put_options
from .integrity import IntegrityError, seal, unseal
from .outcome import RecordError, bad_record

Term = str | int


@dataclass(frozen=True, slots=True)
class Fetched:
    """A record as read: its live siblings' values (one unless writes raced) and its context."""

    values: list[bytes]  # unsealed bodies in a sealed bucket
    context: dict[str, int]
    # Why each sibling left out of `values` failed its check (only when the read asked to skip).
    bad: tuple[str, ...] = ()


class RecordStore:
    """Reads and writes records in one bucket type with its quorums (r, w and dw from its props).

    `sealed` maps each bucket whose values carry a MAC under `mac_key` to what its records are
    called in errors ("Patient", "SCR").
    """

    def __init__(
        self,
        coordinator: Coordinator,
        props_of: Callable[[str, str], BucketProps | None],
        now_us: Callable[[], int],
        *,
        mac_key: bytes,
        sealed: Mapping[str, str],
        bucket_type: str = "records",
        timeout_ms: int = 10_000,
        rng: random.Random | None = None,
    ) -> None:
        self.coordinator = coordinator
        self._props_of = props_of
        self.now_us = now_us
        self.bucket_type = bucket_type
        self._mac_key = mac_key
        self._sealed = dict(sealed)
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

    async def get(self, bucket: str, key: str, *, skip_bad: bool = False) -> Fetched | None:
        """The record's live siblings, or None when there is none (never written, or deleted).

        A sibling of a sealed bucket that fails its check raises the error naming the record,
        unless `skip_bad`: then it is left out and its reason kept in `bad` (a rewrite needs
        the context that covers it).
        """
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
        values = [c.value for c in live]
        bad: list[str] = []
        if bucket in self._sealed:
            values, bad = self._unseal_all(bucket, key, values)
            if bad and not skip_bad:
                raise RecordError("INVALID_STORED_RECORD", bad[0])
        # Siblings in a stable order, so whatever merges them sees the same sequence everywhere.
        values.sort()
        return Fetched(values, dict(riak_object.context(reply.obj)), tuple(bad))

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
        if bucket in self._sealed:
            value = seal(self._mac_key, self.bucket_type, bucket, key, value)
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

    def _unseal_all(self, bucket: str, key: str, values: list[bytes]) -> tuple[list, list[str]]:
        """(bodies that verified, the named reason of each value that did not)."""
        good, bad = [], []
        for value in values:
            try:
                good.append(unseal(self._mac_key, self.bucket_type, bucket, key, value))
            except IntegrityError as exc:
                error = bad_record(self._sealed[bucket], key, f"failed its integrity check: {exc}")
                bad.append(error.diagnostics)
        return good, bad

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
