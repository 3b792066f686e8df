"""Fuzzing the HTTP surface: requests built from the OpenAPI document, plus hostile input.

Two passes, both driven by spinekv's own /openapi.json description, so a new
endpoint is fuzzed as soon as it is documented (and test_http_service.py makes
sure every route is documented):

- a sweep: every operation once per hostile value of each of its parameters,
  headers, path segments and bodies, one thing wrong at a time;
- hypothesis: random mixes of schema-shaped and hostile values, odd methods and
  mangled paths.

Hostile means: %-escapes and unicode in paths, huge, negative and non-numeric
numbers (including "²", which str.isdigit() accepts and int() refuses), broken
and too-deep JSON, garbage X-Riak-Vclock, Link, If-Modified-Since and
X-Riak-Index-* headers. Every answer must be deliberate: never a 5xx other than
503 (a quorum or timeout answer), and every error carries a reason. All
findings are collected and reported together, each with a curl command that
reproduces it. Afterwards every node still answers /ping and a key written
before the fuzzing reads back unchanged on every node.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import string
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from spinekv.http.openapi import DOCUMENT
from tests.inproc import inproc_cluster, unstarted_app


def _served_document() -> dict:
    """The OpenAPI document a node serves at /openapi.json."""
    with tempfile.TemporaryDirectory() as folder:
        return json.loads(unstarted_app(Path(folder))[DOCUMENT])


DOC = _served_document()
OPERATIONS = sorted(
    (path, method.upper(), op) for path, item in DOC["paths"].items() for method, op in item.items()
)

# The canary lives in a bucket type of its own that the fuzzer never names, so no
# generated request may legitimately touch it (not even by changing its type's props).
CANARY_TYPE = "canary"
CANARY_PATH = "/types/canary/buckets/canary/keys/canary"
CANARY_TOML = "[bucket_types.canary]\n"
CANARY_VALUE = b"the canary \x00\xff sings"

# Membership changes would legitimately take nodes out of the cluster: the fuzzer may
# call /admin/stage, but never with an action that stages something.
STAGE_ACTIONS = {"join", "leave", "remove"}

ODD_METHODS = ["PATCH", "OPTIONS", "TRACE", "PROPFIND", "FOO", "HEAD", "DELETE", "PUT", "POST"]


# ------------------------------------------------------------------ requests


@dataclass
class FuzzRequest:
    method: str
    path: str  # percent-encoded, sent as is
    query: str = ""  # the raw query string, sent as is
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    operation: str = "?"

    @property
    def target(self) -> str:
        return self.path + ("?" + self.query if self.query else "")

    def reproduction(self, base: str) -> str:
        """A curl command that sends this request again."""
        parts = [f"curl -sS -X {self.method} '{base}{self.target}'"]
        parts += [
            f"-H {json.dumps(f'{k}: {v}', ensure_ascii=False)}" for k, v in self.headers.items()
        ]
        if self.body is not None:
            shown = self.body if len(self.body) <= 200 else self.body[:100] + b"..."
            parts.append(f"--data-binary {json.dumps(shown.decode('latin-1'))}")
            if len(self.body) > 200:
                parts.append(f"# body of {len(self.body)} bytes")
        return " ".join(parts)


def _resolve(node: dict) -> dict:
    """Follow a local $ref (#/components/...)."""
    while "$ref" in node:
        target: Any = DOC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _params(op: dict, where: str) -> list[dict]:
    return [p for p in map(_resolve, op.get("parameters", [])) if p["in"] == where]


def _media(op: dict) -> dict:
    return op.get("requestBody", {}).get("content", {})


# ------------------------------------------------------------------ values

# Strings that numeric parsers trip over: str.isdigit() is true for "²" but int() refuses it.
HOSTILE_NUMBERS = [
    "²",
    "¹²",
    "٣",
    "-1",
    "0",
    "99999999999999999999999999999",
    "1.5",
    "1e3",
    " 2",
    "+2",
    "1_000",
    "0x10",
    "NaN",
    "",
    "abc",
    "%",
]
HOSTILE_TEXT = [*HOSTILE_NUMBERS, "true", "stream", "\u00e9\u20ac\U0001f600", "x" * 5000]
HOSTILE_SEGMENTS = [
    "%",
    "%zz",
    "%00",
    "%2F",
    "%2f..%2F",
    "%C3%28",
    "%FF%FE",
    "..",
    ".",
    "%20",
    "~",
    "%C2%B2",
    "-1",
    "99999999999999999999999",
    "%E2%82%AC%F0%9F%98%80",
    "a" * 3000,
    "nosuchtype",
    "_bin",
    "x_int",
    "$bucket",
]
HOSTILE_HEADERS: dict[str, list[str]] = {
    "x-riak-vclock": [
        "",
        "=",
        "a",
        "a===",
        "!!!!",
        "g2wAAAABaAJtAAAACHYAAAAB",
        "AAAA" * 50,
        base64.b64encode(b"\x93\x01\x02\x03").decode(),
        base64.b64encode(b"\xff" * 30).decode(),
    ],
    "link": [
        "</buckets/b/keys/k>",
        '<>; riaktag="x"',
        '</buckets/b>; rel="up"',
        '</types/t/buckets/b/keys/k>; riaktag="a", </riak/b/k>; riaktag="b"',
        "<</buckets/%zz/keys/%>>; riaktag=",
        '</buckets/b/keys/k>; riaktag="unterminated',
        ",,,;;;",
        "\u00e9",
    ],
    "if-modified-since": [
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "Mon, 32 Foo 2020 99:99:99 GMT",
        "Sat, 01 Jan 0001 00:00:00 GMT",
        "0",
        "-1",
        "yesterday",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "\u00e9t\u00e9",
    ],
    "if-none-match": ["*", '"abc"', 'W/"x"', "", '"', '*, "a"', "garbage"],
    "if-match": ["*", '"abc"', "", '"', "garbage", 'W/"x"'],
    "content-type": [
        "",
        ";",
        "a/b/c",
        "text/plain; charset=nonsense",
        "multipart/mixed; boundary=",
        "application/json; charset=utf-16",
        "\u00e9/\u00e9",
    ],
    "accept": ["multipart/mixed", "image/png", "", ";q=x", "*/*;q=2", "text/plain;q=\u00e9"],
}
HOSTILE_HEADERS["if-unmodified-since"] = HOSTILE_HEADERS["if-modified-since"]
HOSTILE_INDEXES = [
    ("f_int", "abc"),
    ("f_int", "\u00b2"),
    ("f_int", "9" * 40),
    ("f_int", ""),
    ("f_int", "1,,2"),
    ("f_bin", "\u00e9"),
    ("f_bin", ""),
    ("foo", "1"),
    ("_int", "1"),
    ("$key", "x"),
    ("f_int", "1.5"),
]
HOSTILE_META = [("m", "x" * 8000), ("m", "\u00e9"), ("", "v")]


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


HOSTILE_JSON = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'{"props": null}',
    b'{"props": []}',
    b'{"props": {"n_val": NaN}}',
    b'{"props": {"n_val": 1e400}}',
    b'{"props": {"n_val": 99999999999999999999999}}',
    b'{"props": {"n_val": 0}}',
    b'{"props": {"n_val": 3.5}}',
    b'{"props": {"r": "\xc2\xb2"}}',
    b'{"props": {"allow_mult": "yes"}}',
    b'{"props": {"": null}}',
    b"\xff\xfe\x00",
    b'{"props": {"n_val": 3}',
    _deep(20_000),  # deeper than json.loads can recurse, yet under max_object_size
    b'{"props": ' + _deep(5000) + b"}",
]
HOSTILE_COUNTS = [b"", b"abc", b"1.5", b"\xc2\xb2", b"1_000", b" 5 ", b"+5", b"9" * 40, b"\xff"]
HOSTILE_VALUES = [b"", b"\x00" * 10, b"v" * 70_000]  # object values; 70 kB > max_object_size

# Well-formed values: most requests should get past the input checks into deeper code.
PLAIN_SEGMENTS = {
    "type": ["default", "siblings"],
    "bucket": ["b", "c", "$b", "b%20c"],
    "key": ["k", "k2", "%C3%A9t%C3%A9"],
    "field": ["f_bin", "f_int", "g_bin", "$bucket", "$key"],
}
PLAIN_TERMS = ["a", "b", "z", "k", "1", "5", "-3"]
PLAIN_HEADERS = {
    "link": ['</buckets/b/keys/k>; riaktag="t"', '</buckets/c/keys/k2>; riaktag="u"'],
    "if-modified-since": ["Sun, 06 Nov 1994 08:49:37 GMT"],
    "if-unmodified-since": ["Fri, 31 Dec 9999 23:59:59 GMT"],
    "if-none-match": ["*", '"abc"'],
    "if-match": ['"abc"'],
    "accept": ["multipart/mixed", "*/*"],
}


def _plain_query_value(schema: dict) -> str:
    schema = _resolve(schema)
    if "oneOf" in schema:
        return _plain_query_value(schema["oneOf"][-1])
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("type") == "integer":
        return str(schema.get("minimum", 1))
    return "x"


def _content_type(op: dict) -> str:
    media = _media(op)
    if "application/json" in media:
        return "application/json"
    return "text/plain"


def _plain_body(op: dict) -> bytes | None:
    media = _media(op)
    if not media:
        return None
    if "application/json" in media:
        return b'{"props": {}}'
    if "text/plain" in media:
        return b"1"
    return b"v"


def _safe(path: str, query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Never stage a membership change: it would legitimately take a node away."""
    if path != "/admin/stage":
        return query
    return [(k, "nothing" if v.strip().lower() in STAGE_ACTIONS else v) for k, v in query]


def _fill(path: str, segments: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: segments[m.group(1)], path)


def _plain_segments(path: str) -> dict[str, str]:
    names = re.findall(r"\{([^}]+)\}", path)
    return {name: PLAIN_SEGMENTS.get(name, PLAIN_TERMS)[0] for name in names}


# ------------------------------------------------------------------ the sweep


def _required(path: str, op: dict) -> list[tuple[str, str]]:
    """Plain values for the query parameters an operation requires."""
    required = [p for p in _params(op, "query") if p.get("required")]
    return _safe(path, [(p["name"], _plain_query_value(p["schema"])) for p in required])


def _plain_request(path: str, method: str, op: dict) -> FuzzRequest:
    required = _required(path, op)
    headers = {"Content-Type": _content_type(op)} if "requestBody" in op else {}
    return FuzzRequest(
        method=method,
        path=_fill(path, _plain_segments(path)),
        query=urlencode(required, quote_via=quote),
        headers=headers,
        body=_plain_body(op),
        operation=f"{method} {path}",
    )


def sweep() -> Iterator[FuzzRequest]:
    """Each operation with one hostile thing at a time: a parameter, header, segment or body."""
    for path, method, op in OPERATIONS:
        plain = _plain_request(path, method, op)
        yield plain
        for odd in ("PATCH", "FOO"):
            yield FuzzRequest(odd, plain.path, plain.query, operation=f"{odd} {path}")
        segments = _plain_segments(path)
        for name in segments:
            for hostile in HOSTILE_SEGMENTS:
                if CANARY_TYPE not in unquote(hostile).lower():
                    bad = _fill(path, {**segments, name: hostile})
                    yield replace(plain, path=bad)
        for param in _params(op, "query"):
            for hostile in HOSTILE_TEXT:
                query = [(k, v) for k, v in _required(path, op) if k != param["name"]]
                query.append((param["name"], hostile))
                yield replace(plain, query=urlencode(_safe(path, query), quote_via=quote))
        for param in _params(op, "header"):
            name = param["name"].lower()
            if name.startswith("x-riak-index-"):
                for index, value in HOSTILE_INDEXES:
                    yield replace(plain, headers={**plain.headers, f"X-Riak-Index-{index}": value})
            elif name.startswith("x-riak-meta-"):
                for meta, value in HOSTILE_META:
                    yield replace(plain, headers={**plain.headers, f"X-Riak-Meta-{meta}": value})
            else:
                for value in HOSTILE_HEADERS.get(name, HOSTILE_TEXT[:6]):
                    yield replace(plain, headers={**plain.headers, param["name"]: value})
        media = _media(op)
        if media:
            bodies = (
                HOSTILE_JSON
                if "application/json" in media
                else HOSTILE_COUNTS
                if "text/plain" in media
                else HOSTILE_VALUES
            )
            for body in bodies:
                yield replace(plain, body=body)
        yield replace(plain, query=plain.query + "&unknown=%FF&=&&", headers={})


# ------------------------------------------------------------------ hypothesis strategies


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """`good` three times in four: most requests get past input checks into deeper code."""
    return st.integers(0, 3).flatmap(lambda n: bad if n == 0 else good)


_UNICODE = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], min_codepoint=1), min_size=1, max_size=12
)
_HOSTILE_TEXT = st.one_of(
    st.sampled_from(HOSTILE_TEXT), _UNICODE, st.text(string.printable, max_size=30)
)
# Header values: anything a client can put on the wire (no CR/LF), latin-1 included.
_HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=40,
)
_TOKEN = st.text(string.ascii_letters + string.digits + "_-$", min_size=0, max_size=12)


@st.composite
def path_segment(draw: st.DrawFn, name: str) -> str:
    """One percent-encoded path segment for parameter `name`: plain, or hostile."""
    segment = draw(
        mostly(
            st.sampled_from(PLAIN_SEGMENTS.get(name, PLAIN_TERMS)),
            st.one_of(
                st.sampled_from(HOSTILE_SEGMENTS), st.builds(lambda s: quote(s, safe=""), _UNICODE)
            ),
        )
    )
    if CANARY_TYPE in unquote(segment, errors="replace").lower():
        return "b"
    return segment


def _schema_value(schema: dict) -> st.SearchStrategy[str]:
    """Text in the shape a schema asks for (a loose reading: fuzzing, not validating)."""
    schema = _resolve(schema)
    if "oneOf" in schema:
        return st.one_of([_schema_value(s) for s in schema["oneOf"]])
    if "enum" in schema:
        return st.sampled_from([str(v) for v in schema["enum"]])
    if schema.get("type") == "integer":
        low = schema.get("minimum", 0)
        return st.integers(min_value=low, max_value=low + 5).map(str)
    return st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=12)


@st.composite
def query_string(draw: st.DrawFn, op: dict, path: str) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(
            st.sampled_from(
                [
                    "r=%zz&&=&w",
                    "keys",
                    "buckets",
                    "=",
                    "&&&",
                    "r=1&r=2&r=all",
                    "%ff=%fe",
                    "a" * 3000,
                ]
            )
        )
    pairs = []
    for param in _params(op, "query"):
        if param.get("required") or draw(st.integers(0, 3)) == 0:
            pairs.append(
                (param["name"], draw(mostly(_schema_value(param["schema"]), _HOSTILE_TEXT)))
            )
    if draw(st.integers(0, 4)) == 0:  # Riak ignores parameters it does not know
        pairs.append(
            (draw(st.sampled_from(["foo", "props", "vtag", "chunked"])), draw(_HOSTILE_TEXT))
        )
    return urlencode(_safe(path, pairs), quote_via=quote)


def _header_value(name: str) -> st.SearchStrategy[str]:
    hostile = st.one_of(st.sampled_from(HOSTILE_HEADERS.get(name, HOSTILE_TEXT)), _HEADER_TEXT)
    return (
        mostly(st.sampled_from(PLAIN_HEADERS[name]), hostile) if name in PLAIN_HEADERS else hostile
    )


_PLAIN_INDEX = st.one_of(
    st.tuples(st.sampled_from(["f_bin", "g_bin"]), st.sampled_from(["a", "b", "a, z"])),
    st.tuples(st.sampled_from(["f_int", "F_INT"]), st.sampled_from(["1", "5", "-3, 7"])),
)
_HOSTILE_INDEX = st.one_of(
    st.sampled_from(HOSTILE_INDEXES),
    st.tuples(st.one_of(_TOKEN, _TOKEN.map(lambda t: t + "_int")), _HEADER_TEXT),
)


@st.composite
def headers_for(draw: st.DrawFn, op: dict) -> dict[str, str]:
    headers: dict[str, str] = {}
    if "requestBody" in op:
        headers["Content-Type"] = draw(
            mostly(st.just(_content_type(op)), st.sampled_from(HOSTILE_HEADERS["content-type"]))
        )
    for param in _params(op, "header"):
        name = param["name"].lower()
        if name == "content-type" or draw(st.integers(0, 2)) > 0:
            continue
        if name.startswith("x-riak-meta-"):
            value = draw(mostly(st.sampled_from(["v", "two words"]), _HEADER_TEXT))
            headers[f"X-Riak-Meta-{draw(_TOKEN) or 'm'}"] = value
        elif name.startswith("x-riak-index-"):
            index, value = draw(mostly(_PLAIN_INDEX, _HOSTILE_INDEX))
            headers[f"X-Riak-Index-{index}"] = value
        else:
            headers[param["name"]] = draw(_header_value(name))
    if draw(st.integers(0, 5)) == 0:  # a hostile header the operation does not declare
        name = draw(st.sampled_from(sorted(HOSTILE_HEADERS)))
        headers[name] = draw(st.sampled_from(HOSTILE_HEADERS[name]))
    return headers


_PLAIN_PROPS = st.dictionaries(
    st.sampled_from(["n_val", "allow_mult", "r", "w", "dw", "pr", "notfound_ok"]),
    st.one_of(st.integers(1, 5), st.booleans(), st.sampled_from(["one", "quorum", "all"])),
    max_size=3,
)
_HOSTILE_PROPS = st.dictionaries(
    st.sampled_from(
        [
            *("n_val", "allow_mult", "last_write_wins", "r", "w", "dw", "pr", "pw", "rw"),
            *("notfound_ok", "basic_quorum", "node_confirms", "datatype", "consistent"),
            *("write_once", "young_vclock", "precommit", "backend", "name", ""),
        ]
    ),
    st.one_of(
        st.integers(-(2**70), 2**70),
        st.booleans(),
        st.none(),
        st.sampled_from(["one", "quorum", "all", "default", "counter", "x"]),
        st.floats(allow_nan=False),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
    max_size=4,
)


@st.composite
def body_for(draw: st.DrawFn, op: dict) -> bytes | None:
    media = _media(op)
    if not media:
        return draw(st.one_of(st.none(), st.none(), st.binary(max_size=64)))
    if "application/json" in media:
        props = draw(mostly(_PLAIN_PROPS, _HOSTILE_PROPS))
        plain = st.just(json.dumps({"props": props}).encode())
        return draw(mostly(plain, st.one_of(st.sampled_from(HOSTILE_JSON), st.binary(max_size=64))))
    if "text/plain" in media:  # a counter increment
        plain = st.integers(-10, 10).map(lambda n: str(n).encode())
        return draw(
            mostly(plain, st.one_of(st.sampled_from(HOSTILE_COUNTS), st.binary(max_size=16)))
        )
    return draw(mostly(st.binary(max_size=64), st.sampled_from(HOSTILE_VALUES)))


@st.composite
def fuzz_requests(draw: st.DrawFn) -> FuzzRequest:
    path, method, op = draw(st.sampled_from(OPERATIONS))
    names = re.findall(r"\{([^}]+)\}", path)
    raw_path = _fill(path, {name: draw(path_segment(name)) for name in names})
    shape = draw(st.integers(0, 19))
    if shape == 0:  # a method the resource may not allow
        method = draw(st.sampled_from(ODD_METHODS))
    elif shape == 1:  # a path no resource has, or a mangled one
        raw_path = draw(
            st.sampled_from(
                [
                    raw_path + "/extra",
                    raw_path.replace("/", "//"),
                    "/types/",
                    "/buckets//keys/",
                    "/buckets/b/keys/k/preflist/x",
                    "/riak/b/k",
                    "/mapred",
                    "/admin/",
                    "/%2e%2e/%2e%2e/etc/passwd",
                ]
            )
        )
    return FuzzRequest(
        method=method,
        path=raw_path,
        query=draw(query_string(op, path)),
        headers=draw(headers_for(op)),
        body=draw(body_for(op)),
        operation=f"{method} {path}",
    )


# ------------------------------------------------------------------ sending and judging


@dataclass
class Answer:
    status: int
    body: bytes


async def send(session: aiohttp.ClientSession, base: str, req: FuzzRequest) -> Answer:
    async with session.request(
        req.method,
        URL(base + req.target, encoded=True),
        headers=req.headers,
        data=req.body,
        skip_auto_headers=["Content-Type", "Accept", "Accept-Encoding", "User-Agent"],
        allow_redirects=False,
    ) as response:
        return Answer(response.status, await response.read())


def problem(req: FuzzRequest, answer: Answer) -> str | None:
    """What is wrong with this answer, or None when it is a deliberate one."""
    if answer.status >= 500 and answer.status != 503:
        return "server error"
    if answer.status >= 400 and req.method != "HEAD" and not answer.body.strip():
        return "an error without a reason"
    return None


@dataclass
class Findings:
    """Every answer seen, and the requests that got a wrong one (first one per kind kept)."""

    base: str
    seen: Counter[tuple[str, int]] = field(default_factory=Counter)
    wrong: dict[tuple[str, str, int], str] = field(default_factory=dict)

    def judge(self, req: FuzzRequest, answer: Answer) -> None:
        self.seen[(req.operation, answer.status)] += 1
        what = problem(req, answer)
        if what is not None:
            self.wrong.setdefault(
                (what, req.operation, answer.status),
                f"{what}: {req.operation}\n  {req.reproduction(self.base)}\n"
                f"  -> {answer.status} {answer.body[:200]!r}",
            )

    def report(self) -> str:
        return f"{len(self.wrong)} kinds of wrong answer:\n" + "\n".join(self.wrong.values())

    def coverage(self) -> str:
        by_op: dict[str, Counter[int]] = {}
        for (operation, status), n in self.seen.items():
            by_op.setdefault(operation, Counter())[status] += n
        return "\n".join(f"{op}: {dict(statuses)}" for op, statuses in sorted(by_op.items()))


async def run_sweep(session: aiohttp.ClientSession, findings: Findings, parallel: int = 8) -> None:
    requests = iter(sweep())

    async def worker() -> None:
        for req in requests:  # the shared iterator hands each request to one worker
            findings.judge(req, await send(session, findings.base, req))

    await asyncio.gather(*(worker() for _ in range(parallel)))


def run_hypothesis(
    loop: asyncio.AbstractEventLoop,
    session: aiohttp.ClientSession,
    findings: Findings,
    max_examples: int,
) -> None:
    """Drive hypothesis from this (worker) thread; each request runs on `loop`, which keeps
    serving the cluster (gossip, probes) between examples as it would in production."""

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(req=fuzz_requests())
    def fuzz(req: FuzzRequest) -> None:
        answer = asyncio.run_coroutine_threadsafe(send(session, findings.base, req), loop)
        findings.judge(req, answer.result(timeout=60))

    fuzz()


async def fuzz_node(bases: dict[str, str], target: str, *, examples: int, sweep: bool) -> Findings:
    """Write the canary, fuzz node `target`, then check every node and the canary."""
    findings = Findings(bases[target])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        written = {"Content-Type": "application/x-canary", "X-Riak-Meta-Song": "tweet"}
        async with session.put(
            bases[target] + CANARY_PATH, data=CANARY_VALUE, headers=written
        ) as r:
            assert r.status == 204, await r.text()
            vclock = r.headers["X-Riak-Vclock"]
        if sweep:
            await run_sweep(session, findings)
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(run_hypothesis, loop, session, findings, examples)
        for name, base in bases.items():
            async with session.get(base + "/ping") as r:
                assert (r.status, await r.text()) == (200, "OK"), name
            async with session.get(base + CANARY_PATH) as r:
                assert r.status == 200, (name, await r.text())
                assert await r.read() == CANARY_VALUE, name
                assert r.headers["Content-Type"].startswith("application/x-canary"), name
                assert r.headers["X-Riak-Meta-Song"] == "tweet", name
                assert r.headers["X-Riak-Vclock"] == vclock, f"{name}: the canary was rewritten"
    return findings


# ------------------------------------------------------------------ the tests


@pytest.fixture
async def cluster(tmp_path):
    async with inproc_cluster(tmp_path, extra=CANARY_TOML) as c:
        yield c


async def test_fuzzing_the_http_surface_gets_only_deliberate_answers(cluster):
    bases = {name: cluster.url(name) for name in cluster.nodes}
    findings = await fuzz_node(bases, "n1", examples=500, sweep=True)
    print(findings.coverage())  # shown with -s: which operations answered what
    assert not findings.wrong, findings.report()
    # The sweep sends each documented operation at least once as a plain request.
    assert {op for op, _ in findings.seen} >= {f"{m} {p}" for p, m, _ in OPERATIONS}


def test_sweep_stays_clear_of_the_canary_and_of_membership_changes():
    for req in itertools.islice(sweep(), 100_000):
        assert CANARY_TYPE not in unquote(req.path).lower(), req.path
        if req.path == "/admin/stage":
            actions = [v for k, v in re.findall(r"([^&=]*)=([^&]*)", req.query) if k == "action"]
            assert all(unquote(v).strip().lower() not in STAGE_ACTIONS for v in actions)


RAW_REQUESTS = [
    b"GET /buckets/\xff\xfe/keys/\xc3 HTTP/1.1\r\n",
    b"GET /types/\xe2\x82\xac/buckets/b/keys/k/preflist HTTP/1.1\r\n",
    b"PUT /buckets/b/keys/k HTTP/1.1\r\nContent-Length: 1\r\nX-Riak-Vclock: \xff\xff\r\n",
    b"GET /buckets/b/keys/k HTTP/1.1\r\nIf-Modified-Since: \xe9t\xe9\r\n",
    b"PUT /buckets/b/keys/k HTTP/1.1\r\nContent-Length: 1\r\nX-Riak-Meta-\xc3\xa9: \xe9\r\n",
    b"PUT /buckets/b/keys/k HTTP/1.1\r\nContent-Length: 1\r\nX-Riak-Index-a_bin: \xe9\r\n",
    b'PUT /buckets/b/keys/k HTTP/1.1\r\nContent-Length: 1\r\nLink: <\xff>; riaktag="\xe9"\r\n',
    b"GET /?x=\xff HTTP/1.1\r\nAccept: \xff\r\n",
    b"GET /stats HTTP/1.1\r\nAccept: text/plain;q=\xff\r\n",
]


@pytest.mark.parametrize("head", RAW_REQUESTS)
async def test_raw_non_utf8_bytes_in_request_line_and_headers_are_no_server_error(cluster, head):
    """Bytes no HTTP client library would send: non-UTF-8 in paths and header values."""
    spec = cluster.config.node("n2")
    reader, writer = await asyncio.open_connection(spec.host, spec.http_port)
    try:
        body = b"x" if b"Content-Length: 1" in head else b""
        writer.write(head + b"Host: x\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), timeout=20)
    finally:
        writer.close()
    # aiohttp's parser may refuse the request line itself (400) before any handler runs.
    status_line = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    assert status_line, reply[:500]
    status = int(status_line.group(1))
    assert status < 500 or status == 503, reply[:500]
    if status >= 400:
        assert reply.partition(b"\r\n\r\n")[2].strip(), reply[:500]
    async with aiohttp.ClientSession() as session, session.get(cluster.url("n2") + "/ping") as r:
        assert r.status == 200
