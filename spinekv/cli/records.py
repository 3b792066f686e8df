"""The record API's command line: `spinekv load-demo` (synthetic data) and `spinekv trace`."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import itertools
import json
import ssl
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import aiohttp
import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..config import ClusterConfig
from ..records import demo, trace
from ..security.secrets import DEMO_TOKENS, verify_secret
from .common import cluster_config, config_name, console
from .nodehttp import ssl_context


def _trust(config: ClusterConfig) -> ssl.SSLContext | bool:
    """aiohttp's `ssl` for calls to the cluster's nodes: its CA with [tls], else the default."""
    context = ssl_context(config)
    return True if context is None else context


# ====================================================================== spinekv load-demo

PATIENT_PATH = "/personal-demographics/FHIR/R4/Patient"
SCR_PATH = "/summary-care-record/FHIR/R4/Bundle"
RETRIES = 3  # after the first attempt, each with the same X-Request-ID
RETRY_PAUSES = (0.2, 0.5, 1.0)  # seconds before each retry: give a busy node a moment
SHOWN_FAILURES = 5
MAX_FAILURES = 100  # then stop: the cluster is down or every request is wrong


@dataclass(frozen=True)
class Failure:
    """A request that did not succeed after its retries: what it was and why."""

    what: str
    status: int | None  # None: no HTTP answer (connection refused, timeout)
    reason: str

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no answer"
        return f"{self.what}: {status}: {self.reason}"


@dataclass
class LoadReport:
    patients: int = 0
    scrs: int = 0
    # Patients whose number was already in use: the cluster allocated another (see load_person).
    renumbered: int = 0
    failures: list[Failure] = field(default_factory=list)


def outcome_text(text: str) -> str:
    """'CODE: diagnostics' of an OperationOutcome body, else the start of the body."""
    try:
        issue = json.loads(text)["issue"][0]
        code = issue["details"]["coding"][0]["code"]
        return f"{code}: {issue.get('diagnostics', '')}"
    except (ValueError, KeyError, IndexError, TypeError):
        return text.strip()[:200] or "(empty body)"


class DemoLoader:
    """POSTs people to the record API, spreading requests over the nodes.

    A request that gets no answer or a 5xx is retried up to RETRIES times with the same
    X-Request-ID, on the next node: the cluster answers a repeated id with its first response
    instead of applying the write again, so a retry is safe even when the first attempt went
    through. A 409 on a retry means just that (the earlier attempt was applied), not a failure.
    """

    def __init__(self, session: aiohttp.ClientSession, urls: list[str], token: str) -> None:
        self.session = session
        self.urls = itertools.cycle(urls)
        self.token = token
        self.report = LoadReport()

    async def post(self, path: str, body: dict, what: str) -> dict | Failure | None:
        """The JSON answer of a successful POST, None for a retried conflict, or the Failure."""
        data = json.dumps(body).encode()
        headers = {
            "Authorization": f"Bearer {self.token}",
            "X-Request-ID": str(uuid.uuid4()),
            "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json",
        }
        failure = Failure(what, None, "not sent")
        for attempt in range(RETRIES + 1):
            if attempt:
                await asyncio.sleep(RETRY_PAUSES[attempt - 1])
            url = next(self.urls) + path
            try:
                async with self.session.post(url, data=data, headers=headers) as resp:
                    status, text = resp.status, await resp.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = Failure(what, None, f"{type(exc).__name__} {exc}".strip())
                continue
            if 200 <= status < 300:
                try:
                    return json.loads(text)
                except ValueError:
                    return Failure(what, status, f"the answer is not JSON: {text[:200]!r}")
            if status == 409 and attempt:
                return None
            failure = Failure(what, status, outcome_text(text))
            if status < 500:
                break
        return failure

    async def load_person(self, person: demo.Person) -> None:
        answer = await self.post(PATIENT_PATH, person.patient, f"Patient {person.nhs}")
        if isinstance(answer, Failure):
            self.report.failures.append(answer)
            return
        self.report.patients += 1
        if answer is not None and answer.get("id") != person.nhs:
            # The number was in use, so the cluster allocated another: this SCR names the
            # number we asked for, which is someone else's now.
            self.report.renumbered += 1
            return
        if person.scr is None:
            return
        answer = await self.post(SCR_PATH, person.scr, f"SCR for {person.nhs}")
        if isinstance(answer, Failure):
            self.report.failures.append(answer)
        else:
            self.report.scrs += 1


def _session(config: ClusterConfig, concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, ssl=_trust(config)),
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def serving_urls(session: aiohttp.ClientSession, urls: list[str]) -> list[str]:
    """The base URLs whose node answers /ping."""

    async def pings(url: str) -> bool:
        try:
            async with session.get(f"{url}/ping", timeout=aiohttp.ClientTimeout(total=3)) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    answers = await asyncio.gather(*(pings(u) for u in urls))
    return [u for u, ok in zip(urls, answers, strict=True) if ok]


async def check_not_loaded(
    session: aiohttp.ClientSession, url: str, token: str, first: str, seed: int
) -> None:
    """Refuse a seed loaded before (creates would get new numbers: duplicates), a refused
    token, or a node without the record API; all before the first write."""
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())}
    try:
        async with session.get(f"{url}{PATIENT_PATH}/{first}", headers=headers) as resp:
            status, text = resp.status, await resp.text()
            fhir = resp.content_type == "application/fhir+json"
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise click.ClickException(f"{url} did not answer: {exc}") from None
    if status == 200:
        raise click.ClickException(
            f"patient {first}, the first of seed {seed}, is already in the cluster: this seed "
            "was loaded before; use another --seed"
        )
    if status in (401, 403):
        raise click.ClickException(f"the record API refused the token: {outcome_text(text)}")
    if status != 404 or not fhir:
        raise click.ClickException(
            f"{url}{PATIENT_PATH}/{first} answered {status}: {outcome_text(text)} "
            "(does this node serve the record API?)"
        )


async def load_people(
    loader: DemoLoader,
    people: Iterator[demo.Person],
    count: int,
    concurrency: int,
    done: Callable[[], None] = lambda: None,
) -> LoadReport:
    """Load `count` people from `people`, `concurrency` at a time; `done()` after each.

    Stops early once MAX_FAILURES requests have failed.
    """
    todo = itertools.islice(people, count)

    async def worker() -> None:
        for person in todo:  # one shared iterator: each person is taken by one worker
            await loader.load_person(person)
            done()
            if len(loader.report.failures) >= MAX_FAILURES:
                return

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return loader.report


def token_for(config: ClusterConfig, role: str) -> str:
    """The local cluster's documented demo token of a [[user]] with this role.

    The file keeps only hashes, so a token is known here only when it is a demo one;
    anywhere else the caller passes --token.
    """
    for user in config.users:
        if user.role == role and user.token_hash is not None:
            for token in DEMO_TOKENS:
                if verify_secret(token, user.token_hash):
                    return token
    raise click.UsageError(
        f"{config_name(config)} lists no {role} [[user]] with a demo token; pass --token"
    )


@click.command("load-demo")
@click.option("--patients", type=click.IntRange(min=1), required=True, help="People to load.")
@click.option("--seed", default=1, show_default=True, help="Same seed, same people.")
@click.option("--node", "node_name", help="Send every request to this node.  [default: all]")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=16,
    show_default=True,
    help="Requests in flight.",
)
@click.option("--token", help="Bearer token.  [default: the first clinical [[user]]]")
@click.option(
    "--scr-share",
    type=click.FloatRange(0.0, 1.0),
    default=0.6,
    show_default=True,
    help="Fraction of patients that also get a Summary Care Record.",
)
@click.pass_context
def load_demo(
    ctx: click.Context,
    patients: int,
    seed: int,
    node_name: str | None,
    concurrency: int,
    token: str | None,
    scr_share: float,
) -> None:
    """Load synthetic patients (NHS numbers from the never-issued 999 range) and their SCRs."""
    config = cluster_config(ctx)
    if node_name is not None:
        if node_name not in config.node_names():
            raise click.BadParameter(
                f"{node_name!r}; {config_name(config)} has {', '.join(config.node_names())}",
                param_hint="--node",
            )
        urls = [config.http_url(node_name)]
    else:
        urls = [config.http_url(name) for name in config.node_names()]
    token = token or token_for(config, "clinical")
    people = demo.population(seed, dt.date.today(), scr_share)
    first = next(people)
    people = itertools.chain([first], people)

    progress = Progress(
        TextColumn("[bold]loading[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("patients"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    report = LoadReport()

    async def run() -> float:
        nonlocal report
        async with _session(config, concurrency) as session:
            serving = await serving_urls(session, urls)
            if not serving:
                raise click.ClickException(
                    f"the cluster is not up: no node answered at {', '.join(urls)} "
                    "(start it with `spinekv up --detach`)"
                )
            down = [n for n in config.members() if config.http_url(n) not in serving]
            if node_name is None and down:
                console.print(f"[yellow]not answering, left out: {', '.join(down)}[/yellow]")
            await check_not_loaded(session, serving[0], token, first.nhs, seed)
            loader = DemoLoader(session, serving, token)
            report = loader.report
            task = progress.add_task("load", total=patients)
            started = time.monotonic()
            with progress:
                await load_people(
                    loader, people, patients, concurrency, lambda: progress.advance(task)
                )
            return time.monotonic() - started

    try:
        seconds = asyncio.run(run())
    except KeyboardInterrupt:
        console.print(
            f"[red]interrupted[/red] after {report.patients} patients and {report.scrs} SCRs"
        )
        ctx.exit(130)
    loaded = report.patients + report.scrs
    console.print(
        f"loaded {report.patients} patients and {report.scrs} SCRs in {seconds:.1f} s"
        f" ({loaded / seconds if seconds > 0 else 0:.0f}/s)"
    )
    if report.renumbered:
        console.print(
            f"[yellow]{report.renumbered} patients' NHS numbers were already in use, so the "
            "cluster gave them new ones (and their SCRs were not uploaded)[/yellow]"
        )
    if report.failures:
        if len(report.failures) >= MAX_FAILURES:
            console.print(f"[red]stopped after {len(report.failures)} failed requests[/red]")
        console.print(f"[red]{len(report.failures)} requests failed[/red]; the first:")
        for failure in report.failures[:SHOWN_FAILURES]:
            console.print(f"  {failure}", markup=False)
        ctx.exit(1)


# ====================================================================== spinekv trace
# (helper C's section: the batch-trace client; load-demo above is separate)

TRACE_PATH = "/personal-demographics/batch-trace"
UPLOAD_BYTES = 64 * 1024


def count_rows(path: Path) -> int:
    """Rows in a trace file as the node counts them: non-blank lines after the header."""
    splitter = trace.LineSplitter()
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(UPLOAD_BYTES):
            lines += sum(not trace.is_blank(line) for line in splitter.feed(chunk))
    lines += sum(not trace.is_blank(line) for line in splitter.end())
    return max(lines - 1, 0)


async def _upload(path: Path) -> AsyncIterator[bytes]:
    # An async generator body: aiohttp sends it chunked, as it is read.
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, UPLOAD_BYTES):
            yield chunk


async def run_trace(
    url: str,
    token: str,
    source: Path,
    out: BinaryIO,
    row_done: Callable[[], None],
    trust: ssl.SSLContext | bool,
) -> Counter[str]:
    """POST `source` to a node's batch trace and stream the answer into `out`, calling
    `row_done()` per row written; answers the count of rows per MATCH_TYPE. `trust` is
    aiohttp's `ssl` for an https `url`."""
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Request-ID": str(uuid.uuid4()),
        "Content-Type": "text/csv",
    }
    # No overall deadline (a big file takes minutes), but a node that falls silent is an error.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
    counts: Counter[str] = Counter()
    splitter = trace.LineSplitter(max_bytes=1 << 20)
    header_seen = False
    async with (
        aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(ssl=trust)
        ) as session,
        session.post(url + TRACE_PATH, data=_upload(source), headers=headers) as resp,
    ):
        if resp.status != 200:
            raise click.ClickException(
                f"{url} refused the trace: HTTP {resp.status}: {outcome_text(await resp.text())}"
            )
        async for chunk in resp.content.iter_any():
            await asyncio.to_thread(out.write, chunk)
            # The node writes one line per row (records/trace.py), so lines count rows.
            for line in splitter.feed(chunk):
                if not header_seen:
                    header_seen = True
                    continue
                counts[_match_type(line)] += 1
                row_done()
    return counts


def _match_type(line: bytes | trace.TooLong) -> str:
    if isinstance(line, trace.TooLong):
        return "?"
    fields = next(csv.reader([line.decode("utf-8", "replace")]), [])
    return fields[3] if len(fields) > 3 else "?"


@click.command("trace")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--node", "node_name", help="The node to send the file to.  [default: the first]")
@click.option("--token", help="Bearer token.  [default: the first service [[user]]]")
@click.pass_context
def trace_command(
    ctx: click.Context, source: Path, target: Path, node_name: str | None, token: str | None
) -> None:
    """Batch-trace SOURCE (CSV: UNIQUE REFERENCE,NHS_NO,FAMILY_NAME,GIVEN_NAME,GENDER,
    DATE_OF_BIRTH,POST_CODE) against the demographics, streaming the answer to TARGET."""
    config = cluster_config(ctx)
    if node_name is None:
        node_name = config.nodes[0].name
    elif node_name not in config.node_names():
        raise click.BadParameter(
            f"{node_name!r}; {config_name(config)} has {', '.join(config.node_names())}",
            param_hint="--node",
        )
    url = config.http_url(node_name)
    token = token or token_for(config, "service")
    total = count_rows(source)
    progress = Progress(
        TextColumn("[bold]tracing[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    # The answer goes to a neighbour first: TARGET appears only once the trace is complete.
    partial = target.with_name(target.name + ".partial")
    started = time.monotonic()
    try:
        with partial.open("wb") as out, progress:
            task = progress.add_task("trace", total=total)
            counts = asyncio.run(
                run_trace(url, token, source, out, lambda: progress.advance(task), _trust(config))
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        partial.unlink(missing_ok=True)
        raise click.ClickException(
            f"the trace through {node_name} ({url}) failed: {type(exc).__name__} {exc}".strip()
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    seconds = time.monotonic() - started
    traced = sum(counts.values())
    console.print(f"traced {traced} rows in {seconds:.1f} s into {target}")
    table = Table(box=None, show_header=True)
    table.add_column("MATCH_TYPE")
    table.add_column("rows", justify="right")
    for kind in [*trace.MATCH_TYPES, *sorted(set(counts) - set(trace.MATCH_TYPES))]:
        if counts[kind]:
            table.add_row(kind, str(counts[kind]))
    console.print(table)
    if traced != total:
        console.print(f"[yellow]{total} rows were sent but {traced} came back[/yellow]")
        ctx.exit(1)
