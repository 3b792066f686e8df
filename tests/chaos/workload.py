"""Jepsen's Riak set workload: read-union-add-write unique elements, recorded in a History."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from tests.history import History, unique_elements
from tests.support import eventually

from .cluster import BUCKET_TYPE

BUCKET = "sets"
VCLOCK = "X-Riak-Vclock"


class ReadFailed(Exception):
    """A GET that returned no usable value (refused, timed out, unmet quorum)."""


class BadValue(Exception):
    """A stored value that is not a JSON list of strings: the store returned garbage."""


@dataclass
class WorkloadStats:
    ok: int = 0
    info: int = 0
    fail: int = 0
    sibling_reads: int = 0  # GETs answered 300: concurrent adds kept as siblings
    bad_values: list[str] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)  # short error class -> count

    @property
    def ops(self) -> int:
        return self.ok + self.info + self.fail


def key_path(key: str) -> str:
    return f"/types/{BUCKET_TYPE}/buckets/{BUCKET}/keys/{key}"


def _decode_set(raw: bytes) -> set[str]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise BadValue(f"not JSON: {raw[:80]!r}") from None
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise BadValue(f"not a list of strings: {raw[:80]!r}")
    return set(value)


async def read_set(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    r: str,
    timeout: float,
    stats: WorkloadStats | None = None,
) -> tuple[set[str], str | None]:
    """GET a key; the union of all its siblings' elements, and the causal context."""
    try:
        async with session.get(
            url + key_path(key),
            params={"r": r},
            headers={"Accept": "multipart/mixed"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            vclock = resp.headers.get(VCLOCK)
            if resp.status == 404:
                return set(), vclock
            if resp.status == 200:
                return _decode_set(await resp.read()), vclock
            if resp.status == 300:
                elements: set[str] = set()
                reader = aiohttp.MultipartReader.from_response(resp)
                siblings = 0
                while (part := await reader.next()) is not None:
                    assert isinstance(part, aiohttp.BodyPartReader)
                    elements |= _decode_set(await part.read())
                    siblings += 1
                if siblings < 2:
                    raise BadValue(f"300 with {siblings} sibling parts")
                if stats is not None:
                    stats.sibling_reads += 1
                return elements, vclock
            text = (await resp.text(errors="replace")).strip()
            raise ReadFailed(f"GET {resp.status} {text[:120]}")
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise ReadFailed(f"GET {type(exc).__name__} {exc}"[:160]) from None


def _error_class(message: str) -> str:
    """A short class for counting: 'GET 503', 'PUT TimeoutError', ..."""
    return " ".join(message.split()[:2])


class SetWorkload:
    """`workers` concurrent clients adding unique elements to `keys` keys on random nodes."""

    def __init__(
        self,
        urls: Sequence[str],
        history: History,
        rng: random.Random,
        *,
        keys: int = 3,
        workers: int = 6,
        pace: float = 0.05,
        timeout: float = 8.0,
    ) -> None:
        self.urls = list(urls)
        self.history = history
        self.keys = [f"set{i}" for i in range(keys)]
        self.workers = workers
        self.pace = pace
        self.timeout = timeout
        self.stats = WorkloadStats()
        # One RNG per worker, seeded from the run's: the choices replay for a seed.
        self._rngs = [random.Random(rng.getrandbits(64)) for _ in range(workers)]

    async def run(self, until: float) -> None:
        """Run every worker until time.monotonic() passes `until`."""
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(self._worker(session, w, until) for w in range(self.workers)))

    async def _worker(self, session: aiohttp.ClientSession, worker: int, until: float) -> None:
        rng = self._rngs[worker]
        elements = unique_elements(f"w{worker}-")
        while time.monotonic() < until:
            await self.add(session, worker, next(elements), rng)
            await asyncio.sleep(rng.uniform(0, 2 * self.pace))  # pacing the load

    async def add(
        self, session: aiohttp.ClientSession, process: int, element: str, rng: random.Random
    ) -> None:
        """One read-union-add-write, recorded as invoke and ok / fail / info."""
        url = rng.choice(self.urls)
        key = rng.choice(self.keys)
        op = self.history.invoke(process, "add", element)
        try:
            elements, vclock = await read_set(session, url, key, "quorum", self.timeout, self.stats)
        except (ReadFailed, BadValue) as exc:
            if isinstance(exc, BadValue):
                self.stats.bad_values.append(f"{url} {key}: {exc}")
            # Nothing was sent to be written: certainly not applied.
            self._fail(op, str(exc))
            return
        body = json.dumps(sorted(elements | {element}))
        headers = {"Content-Type": "application/json"}
        if vclock:
            headers[VCLOCK] = vclock
        try:
            async with session.put(
                url + key_path(key),
                params={"w": "quorum"},
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                text = (await resp.text(errors="replace")).strip()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            # Sent: it may or may not have been applied.
            self._info(op, f"PUT {type(exc).__name__} {exc}"[:160])
            return
        if 200 <= status < 300:
            self.history.ok(op)
            self.stats.ok += 1
        else:
            # Refused or unmet quorum: some replica may hold it all the same.
            self._info(op, f"PUT {status} {text[:120]}")

    def _fail(self, op, error: str) -> None:
        self.history.fail(op, error)
        self.stats.fail += 1
        self.stats.errors[_error_class(error)] += 1

    def _info(self, op, error: str) -> None:
        self.history.info(op, error)
        self.stats.info += 1
        self.stats.errors[_error_class(error)] += 1


async def final_read(
    url: str, keys: Sequence[str], deadline: float, timeout: float = 15.0
) -> set[str]:
    """The union of every sibling of every key, read with r=all; retried until `deadline`."""
    out: set[str] = set()
    async with aiohttp.ClientSession() as session:
        for key in keys:
            elements, _ = await eventually(
                lambda key=key: read_set(session, url, key, "all", timeout),
                what=f"a final read of {key} from {url}",
                timeout=max(0.0, deadline - time.monotonic()),
                interval=0.5,
                not_yet=(ReadFailed,),
            )
            out |= elements
    return out
