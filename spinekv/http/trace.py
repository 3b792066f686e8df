"""POST /personal-demographics/batch-trace: a CSV trace file streamed through the matcher.

The upload is read a chunk at a time and split into lines (records/trace.py decides everything
about a line). Up to CONCURRENCY rows are looked up at once, and rows are written back in the
order they came, as soon as every row before them is done, so the answer starts while the file
is still arriving and memory stays bounded however large the file: a queue of at most
CONCURRENCY rows, one partial line, and one output buffer of at most FLUSH_BYTES.

A row whose lookup fails (the store cannot reach a quorum, or a patient it must look at fails
its integrity check) is answered with MATCH_TYPE `error` and the reason, naming the record;
the trace goes on. Only the header can fail the whole request (400), and only
before the answer has started.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Protocol

from aiohttp import web

from ..records import trace
from ..records.outcome import RecordError
from ..records.trace import BadRow, LineSplitter, TooLong, Traced, TraceRequest
from . import api
from .records import Caller, RecordServices, records_route
from .records_openapi import outcome_answer, record_operation

PATH = "/personal-demographics/batch-trace"
CSV = "text/csv"
CONCURRENCY = 32
FLUSH_BYTES = 32 * 1024
READ_BYTES = 16 * 1024

log = logging.getLogger("spinekv.records.trace")


class Lookups(Protocol):
    """What a trace asks of the demographics service (records/pds.py's Demographics)."""

    async def read(self, number: str) -> dict | None: ...

    async def candidates(self, family: str, birth_date: str) -> list[dict]: ...


async def lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes | TooLong]:
    """The lines of an upload as its chunks arrive."""
    splitter = LineSplitter()
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.end():
        yield line


async def trace_row(request: TraceRequest, lookups: Lookups) -> Traced:
    """One valid row looked up and decided; a failed lookup is an `error` row, never raised."""
    try:
        by_nhs = await lookups.read(request.nhs) if request.nhs else None
        candidates: list[dict] = []
        if trace.needs_candidates(request, by_nhs):
            assert request.family is not None
            candidates = await lookups.candidates(request.family, request.birth_date)
    except RecordError as exc:
        again = "; resend row" if exc.retryable else ""
        return trace.failed(request, f"lookup failed ({exc.code}: {exc.diagnostics}){again}")
    except Exception:
        # One row's surprise must not cost the rest of a 100,000-row file its answer.
        log.exception("trace lookup failed for row %r", request.reference)
        return trace.failed(request, "lookup failed (internal error; see the node log)")
    return trace.decide(request, by_nhs, candidates)


async def trace_lines(
    rows: AsyncIterator[bytes | TooLong],
    lookups: Lookups,
    today: datetime.date,
    write: Callable[[bytes], Awaitable[None]],
    *,
    concurrency: int = CONCURRENCY,
) -> Counter[str]:
    """Trace every row (the lines after the header) and write their output rows in input order;
    answers the number of rows of each MATCH_TYPE."""
    # Each entry is a row's outcome or the task computing it, in input order; None ends it.
    queue: asyncio.Queue[Traced | asyncio.Task[Traced] | None] = asyncio.Queue(concurrency)
    counts: Counter[str] = Counter()

    async def read_rows(group: asyncio.TaskGroup) -> None:
        async for line in rows:
            if trace.is_blank(line):
                continue
            parsed = trace.parse_line(line, today)
            if isinstance(parsed, BadRow):
                await queue.put(trace.bad(parsed))
            else:
                await queue.put(group.create_task(trace_row(parsed, lookups)))
        await queue.put(None)

    async def write_rows() -> None:
        buffer: list[list[str]] = []
        size = 0
        while (item := await queue.get()) is not None:
            traced = item if isinstance(item, Traced) else await item
            counts[traced.match_type] += 1
            out = trace.output_row(traced)
            buffer.append(out)
            size += sum(len(field) for field in out) + len(out)
            # Flush when nothing more is ready: rows reach the client while it still uploads.
            if size >= FLUSH_BYTES or queue.empty():
                await write(trace.csv_text(buffer).encode())
                buffer, size = [], 0
        if buffer:
            await write(trace.csv_text(buffer).encode())

    async with asyncio.TaskGroup() as group:
        group.create_task(read_rows(group))
        group.create_task(write_rows())
    return counts


async def _first_line(rows: AsyncIterator[bytes | TooLong]) -> bytes | TooLong:
    async for line in rows:
        if not trace.is_blank(line):
            return line
    raise RecordError("MISSING_VALUE", f"the trace file is empty: it must start with {_header()}")


def _header() -> str:
    return ",".join(trace.HEADER)


class TraceRoutes:
    """The batch trace route (right `trace`: the service and admin roles)."""

    def __init__(self, services: RecordServices) -> None:
        self.services = services

    def routes(self) -> list[api.Route]:
        return [api.post(PATH, self.batch_trace, _BATCH_TRACE)]

    @records_route("trace")
    async def batch_trace(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        if request.content_type != CSV or (request.charset or "utf-8").lower() != "utf-8":
            raise RecordError(
                "UNSUPPORTED_MEDIA_TYPE",
                f"Content-Type {request.headers.get('Content-Type', '')!r}: "
                f"a batch trace takes {CSV} (UTF-8)",
            )
        async with contextlib.aclosing(lines(request.content.iter_chunked(READ_BYTES))) as rows:
            try:
                trace.check_header(await _first_line(rows))
            except trace.HeaderError as exc:
                raise RecordError("INVALID_VALUE", str(exc)) from None
            return await self._answer(request, caller, rows)

    async def _answer(
        self, request: web.Request, caller: Caller, rows: AsyncIterator[bytes | TooLong]
    ) -> web.StreamResponse:
        demographics = self.services.demographics
        response = web.StreamResponse(headers=_echoed(request))
        response.content_type = CSV
        response.charset = "utf-8"
        await response.prepare(request)
        await response.write(trace.csv_text([trace.OUTPUT_HEADER]).encode())
        try:
            counts = await trace_lines(rows, demographics, demographics.today(), response.write)
        except Exception as exc:  # the answer has started: no error response is possible now
            # Rows never fail (trace_row answers them); this is the upload or the client's
            # connection breaking. Cut the connection so the client sees an unfinished answer
            # rather than a short one that looks complete.
            first = exc.exceptions[0] if isinstance(exc, ExceptionGroup) else exc
            log.warning("batch trace %s ended early: %r", caller.request_id, first)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        log.info("batch trace %s by %s: %s", caller.request_id, caller.name, dict(counts))
        return response


def _echoed(request: web.Request) -> dict[str, str]:
    # The response starts before the decorator sees it, so the ids are echoed here.
    names = ("X-Request-ID", "X-Correlation-ID")
    return {name: request.headers[name] for name in names if name in request.headers}


# ------------------------------------------------------------------ OpenAPI descriptions

_BATCH_TRACE = record_operation(
    "Trace a CSV of people against the demographics (streamed both ways)",
    {
        "200": {
            "description": "One CSV row per input row, streamed as rows are traced.",
            "content": {CSV: {"schema": {"type": "string"}}},
        },
        "415": outcome_answer("Not text/csv."),
    },
    body=CSV,
)
