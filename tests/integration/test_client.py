"""The Python client (spinekv.Client, spinekv.AsyncClient) over real sockets.

Multipart answers are read from a real aiohttp server that sends them in pieces; the
AsyncClient runs against the in-process cluster (tests/inproc.py); the blocking Client
runs in a worker thread (asyncio.to_thread) so that it does not block the loop serving
the nodes. Fake servers that never answer or hang up stand in for a paused or crashing
node. The pure parts are tested in tests/unit/test_client_parts.py.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from spinekv import (
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    NotFound,
    PreconditionFailed,
    QuorumUnavailable,
    RequestTimeout,
    Sibling,
    SiblingsError,
    Unreachable,
)
from spinekv.client import multipart
from spinekv.client.errors import ServerError
from tests.support import eventually, free_ports

NODES = ("n1", "n2", "n3", "n4", "n5")


# ====================================================================== multipart answers


def _multipart_body(boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    """Laid out as Riak lays out its multipart answers."""
    body = b"".join(
        f"\r\n--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode() + value
        for ctype, value in parts
    )
    return body + f"\r\n--{boundary}--\r\n".encode()


async def _read_parts(body: bytes, cut: list[int], content_type: str) -> list[multipart.Part]:
    """The parts the client reads of `body`, sent by a real server in pieces of the `cut` sizes."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        i = 0
        for size in [*cut, len(body)]:
            await response.write(body[i : i + size])
            i += size
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    async with (
        TestServer(app) as server,
        aiohttp.ClientSession() as session,
        session.get(server.make_url("/")) as resp,
    ):
        return [part async for part in multipart.parts(resp.headers, resp.content)]


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.binary(max_size=40), min_size=1, max_size=4),
    cut=st.lists(st.integers(min_value=1, max_value=7), max_size=50),
)
def test_multipart_parts_are_the_same_however_the_bytes_arrive(values, cut):
    body = _multipart_body("XyZ", [("text/plain", v) for v in values])
    parts = asyncio.run(_read_parts(body, cut, "multipart/mixed; boundary=XyZ"))
    assert [value for _headers, value in parts] == values
    assert all(headers == [("Content-Type", "text/plain")] for headers, _value in parts)


async def test_multipart_reads_a_whole_body_and_rejects_a_truncated_or_unbounded_one():
    body = _multipart_body("B1", [("a/b", b"one\r\n--not"), ("c/d", b"")])
    parts = await _read_parts(body, [], "multipart/mixed; boundary=B1")
    assert [v for _h, v in parts] == [b"one\r\n--not", b""]
    with pytest.raises(ServerError, match="malformed multipart answer"):
        await _read_parts(body[:-8], [], "multipart/mixed; boundary=B1")
    with pytest.raises(ServerError, match="malformed multipart answer"):
        await _read_parts(body, [], "multipart/mixed")


# ====================================================================== live nodes


@pytest.fixture
async def client(cluster):
    async with AsyncClient([cluster.url(n) for n in NODES], timeout=5.0) as c:
        yield c


def urls(cluster, *names: str) -> list[str]:
    return [cluster.url(n) for n in (names or NODES)]


async def until_all_see_down(cluster, name: str) -> None:
    await eventually(
        lambda: not any(node.membership.is_up(name) for node in cluster.nodes.values()),
        what=f"every node to see {name} down",
    )


async def test_store_and_fetch_keep_value_and_metadata_across_nodes(cluster, client):
    stored = await client.store(
        "people",
        "p/1 x",  # a key with a slash and a space
        "Ann Smith",
        meta={"source": "gp"},
        indexes=[("surname_bin", "smith"), ("born_int", 1980)],
        links=[("people", "p2", "sibling")],
    )
    assert stored.exists and stored.context and stored.value == b"Ann Smith"
    async with AsyncClient(urls(cluster), prefer=cluster.url("n4")) as other:
        got = await other.get("people", "p/1 x")
    assert got.exists and got.key == "p/1 x"
    assert got.value == b"Ann Smith" and got.text == "Ann Smith"
    assert (got.content_type, got.charset) == ("text/plain", "utf-8")
    assert got.meta == {"source": "gp"}
    assert got.etag and got.last_modified
    assert got.indexes == {("surname_bin", "smith"), ("born_int", 1980)}
    assert got.links == [("people", "p2", "sibling")]
    doc = await client.store("docs", "d", {"a": [1, 2]})
    assert (await client.get("docs", "d")).json == {"a": [1, 2]}
    assert doc.content_type == "application/json"


async def test_missing_key_is_an_object_that_does_not_exist_and_delete_says_what_it_did(client):
    missing = await client.get("b", "nothing-here")
    assert not missing.exists and missing.value is None and missing.siblings == []
    missing.value = b"now"  # Riak-style: fill the empty object and store it
    await missing.store()
    assert (await client.get("b", "nothing-here")).value == b"now"
    obj = await client.get("b", "nothing-here")
    assert await obj.delete() is True
    gone = await client.get("b", "nothing-here")
    assert not gone.exists
    assert await client.delete("b", "nothing-here") is False
    # The tombstone's context comes with the miss, so a write after it supersedes the delete.
    gone.value = b"again"
    await gone.store()
    assert (await client.get("b", "nothing-here", r="all")).value == b"again"


async def test_server_chooses_a_key_when_none_is_given(client):
    obj = await client.store("auto", None, b"x")
    assert obj.key and obj.exists
    assert (await client.get("auto", obj.key)).value == b"x"


async def test_read_modify_write_never_makes_false_siblings(client):
    bucket = client.bucket("rmw", "siblings")  # allow_mult: any causal slip would show
    await bucket.store("k", b"0")
    for i in range(1, 6):
        obj = await bucket.get("k")
        obj.value = str(i).encode()
        await obj.store()
    # The same object stored twice in a row: returnbody brings the new context back.
    obj.value = b"6"
    await obj.store()
    obj.value = b"7"
    await obj.store()
    final = await bucket.get("k", r="all")
    assert len(final.siblings) == 1 and final.value == b"7"


async def test_concurrent_writes_leave_siblings_until_resolved_and_stored(client):
    first = await client.store("s", "k", b"a", bucket_type="siblings")
    for value in (b"b", b"c"):
        # Two writers that both read `first`.
        await client.store("s", "k", value, bucket_type="siblings", context=first.context)
    obj = await client.get("s", "k", bucket_type="siblings", r="all")
    assert sorted(s.value for s in obj.siblings) == [b"b", b"c"]
    with pytest.raises(SiblingsError):
        _ = obj.value
    obj.resolve(lambda siblings: b"".join(sorted(s.value for s in siblings)))
    assert obj.value == b"bc"
    await obj.store()
    again = await client.get("s", "k", bucket_type="siblings", r="all")
    assert len(again.siblings) == 1 and again.value == b"bc"


async def test_resolvers_apply_per_call_over_per_bucket_over_per_client(cluster):
    def pick(tag):
        return lambda siblings: Sibling(tag)

    async with AsyncClient(urls(cluster), resolver=pick(b"client")) as client:
        for bucket in ("x", "y"):
            base = await client.store(bucket, "k", b"0", bucket_type="siblings")
            for v in (b"1", b"2"):
                await client.store(bucket, "k", v, bucket_type="siblings", context=base.context)
        client.bucket("x", "siblings").resolver = pick(b"bucket")
        assert (await client.get("x", "k", bucket_type="siblings")).value == b"bucket"
        assert (await client.get("y", "k", bucket_type="siblings")).value == b"client"
        got = await client.bucket("x", "siblings").get("k", resolver=pick(b"call"))
        assert got.value == b"call"
        client.resolver = None
        assert len((await client.get("y", "k", bucket_type="siblings")).siblings) == 2


async def test_conditional_puts_refuse_with_precondition_failed_and_change_nothing(client):
    obj = await client.store("c", "k", b"v1")
    with pytest.raises(PreconditionFailed):
        await client.store("c", "k", b"other", if_none_match=True)
    fresh = await client.store("c", "new", b"n", if_none_match=True)
    assert fresh.exists
    current = await client.get("c", "k")
    await client.store("c", "k", b"v2", context=current.context)  # someone else writes
    obj.value = b"stale"
    with pytest.raises(PreconditionFailed):
        await obj.store(if_match=True)  # obj's etag is v1's
    assert (await client.get("c", "k")).value == b"v2"


async def test_bad_input_and_unmet_quorums_raise_typed_errors(cluster, client):
    with pytest.raises(BadRequest) as bad:
        await client.get("b", "k", r=7)
    assert bad.value.status == 400 and "r" in bad.value.reason
    with pytest.raises(BadRequest) as big:
        await client.store("b", "big", b"x" * 70_000)  # test clusters allow 64 KiB
    assert big.value.status == 413
    with pytest.raises((NotFound, BadRequest)) as unknown:
        await client.get("b", "k", bucket_type="no-such-type")
    assert "bucket type" in unknown.value.reason.lower()
    with pytest.raises(Conflict) as conflict:
        await client.update_counter("plain", "c", 1)  # the default type has allow_mult=false
    assert "allow_mult" in conflict.value.reason
    # A primary down: pw=3 cannot be met, whichever node coordinates.
    down = next(node for _p, node in cluster.replicas(b"default", b"q", b"k"))
    await cluster.stop(down)
    await until_all_see_down(cluster, down)
    with pytest.raises(QuorumUnavailable) as unmet:
        await client.store("q", "k", b"v", pw=3)
    assert unmet.value.quorum == "pw" and "pw=3" in unmet.value.reason
    assert (await client.store("q", "k", b"v", w=3)).exists  # fallbacks count for w


async def test_a_stopped_node_is_skipped_and_then_avoided(cluster):
    async with AsyncClient(urls(cluster), prefer=cluster.url("n2"), avoid_for=60) as client:
        await client.store("f", "k", b"before")
        await cluster.stop("n2")
        assert (await client.get("f", "k")).value == b"before"
        assert cluster.url("n2") in client._pool.avoided(client._clock())
        for i in range(5):
            await client.store("f", f"k{i}", b"during")  # each goes straight to a live node
        for i in range(5):
            assert (await client.get("f", f"k{i}")).value == b"during"
        assert await client.ping() is True
        assert await client.ping(cluster.url("n2")) is False


async def test_no_reachable_node_is_unreachable_with_every_attempt_listed():
    dead = [f"http://127.0.0.1:{port}" for port in free_ports(2)]
    async with AsyncClient(dead) as client:
        with pytest.raises(Unreachable) as err:
            await client.get("b", "k")
    assert not isinstance(err.value, RequestTimeout)
    assert [node for node, _why in err.value.attempts] == dead


@contextlib.asynccontextmanager
async def fake_node(behaviour: str):
    """A TCP server that reads a request and then never answers ("hang"), or hangs up on it."""
    seen: list[bytes] = []
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        if behaviour == "hang":
            await release.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_timeouts_and_hang_ups_move_idempotent_requests_on_but_not_others(cluster):
    live = cluster.url("n1")
    for behaviour in ("hang", "hang-up"):
        # avoid_for=0: the fake node stays first in line for every request.
        async with (
            fake_node(behaviour) as (fake, seen),
            AsyncClient([fake, live], prefer=fake, timeout=0.5, avoid_for=0) as client,
        ):
            await client.store("t", "k", b"v")  # a PUT to a key is resent safely
            assert (await client.get("t", "k")).value == b"v"
            # Both went to the fake node first (aiohttp itself may resend them there once).
            assert {request.split()[0] for request in seen} == {b"PUT", b"GET"}
            # A new key chosen by the server, or a conditional write, is never resent:
            # the first attempt may have been applied.
            expected = RequestTimeout if behaviour == "hang" else Unreachable
            for attempt in (
                client.store("t", None, b"new"),
                client.store("t", "k2", b"v", if_none_match=True),
            ):
                before = len(seen)
                with pytest.raises(expected) as err:
                    await attempt
                assert isinstance(err.value, RequestTimeout) == (behaviour == "hang")
                assert [node for node, _ in err.value.attempts] == [fake]
                assert "not safe to resend" in err.value.reason
                assert len(seen) == before + 1  # sent once, to the fake node only
            assert not (await client.get("t", "k2")).exists


async def test_secondary_index_queries_pages_and_streams(client):
    for i in range(12):
        await client.store(
            "idx",
            f"p{i:02}",
            b"x",
            indexes=[("group_bin", "even" if i % 2 == 0 else "odd"), ("age_int", 20 + i)],
        )
    exact = await client.get_index("idx", "group_bin", "even")
    assert sorted(exact.results) == [f"p{i:02}" for i in range(0, 12, 2)]
    ranged = await client.get_index("idx", "age_int", 25, 28)
    assert sorted(ranged) == ["p05", "p06", "p07", "p08"]
    terms = await client.get_index("idx", "age_int", 30, 31, return_terms=True)
    assert sorted(terms.results) == [(30, "p10"), (31, "p11")]
    page = await client.get_index("idx", "age_int", 20, 40, max_results=5)
    assert len(page) == 5 and page.has_next_page()
    second = await page.next_page()
    assert len(second) == 5 and not set(page.results) & set(second.results)
    walked = [key async for key in client.iter_index("idx", "age_int", 20, 40, page_size=5)]
    assert walked == [f"p{i:02}" for i in range(12)]
    regex = await client.get_index("idx", "group_bin", "a", "z", term_regex="^ev")
    assert sorted(regex.results) == [f"p{i:02}" for i in range(0, 12, 2)]
    assert sorted((await client.get_index("idx", "$bucket")).results) == walked
    assert (await client.get_index("idx", "$key", "p03", "p05")).results == ["p03", "p04", "p05"]
    streamed = [key async for key in client.stream_index("idx", "group_bin", "odd")]
    assert sorted(streamed) == [f"p{i:02}" for i in range(1, 12, 2)]


async def test_listing_keys_and_buckets_plain_and_streamed(client):
    for bucket, bucket_type in (("l1", "default"), ("l2", "default"), ("l3", "siblings")):
        for k in ("a", "b", "c"):
            await client.store(bucket, k, b"v", bucket_type=bucket_type)
    assert sorted(await client.list_keys("l1")) == ["a", "b", "c"]
    assert sorted([k async for k in client.stream_keys("l3", bucket_type="siblings")]) == [
        "a",
        "b",
        "c",
    ]
    assert {"l1", "l2"} <= set(await client.list_buckets())
    assert "l3" not in await client.list_buckets()
    assert [b async for b in client.stream_buckets(bucket_type="siblings")] == ["l3"]


async def test_bucket_props_set_reset_and_type_props(client):
    bucket = client.bucket("propped")
    assert (await bucket.get_props())["allow_mult"] is False
    await bucket.set_props({"allow_mult": True, "r": 3})
    props = await bucket.get_props()
    assert props["allow_mult"] is True and props["r"] == 3
    base = await bucket.store("k", b"0")
    for v in (b"1", b"2"):
        await bucket.store("k", v, context=base.context)
    assert len((await bucket.get("k", r="all")).siblings) == 2
    await bucket.reset_props()
    assert (await bucket.get_props())["allow_mult"] is False
    with pytest.raises(BadRequest):
        await bucket.set_props({"n_val": "lots"})
    assert (await client.get_type_props("siblings"))["allow_mult"] is True


async def test_counters_increment_decrement_and_return_values(client):
    await client.set_bucket_props("counts", {"allow_mult": True})
    counters = client.bucket("counts")
    assert await counters.get_counter("visits") == 0
    assert await counters.update_counter("visits", 5) is None
    assert await counters.update_counter("visits", -2, returnvalue=True) == 3
    assert await counters.get_counter("visits") == 3
    with pytest.raises(ValueError, match="default bucket type"):
        client.bucket("counts", "siblings").update_counter("visits", 1)


async def test_ping_stats_and_preflist(cluster, client):
    assert await client.ping() is True
    stats = await client.stats(cluster.url("n3"))
    assert stats["riak_kv_version"].startswith("2.") and stats["nodename"] == "n3"
    preflist = await client.preflist("b", "k")
    expected = cluster.replicas(b"default", b"b", b"k")
    assert [(e.partition, e.node) for e in preflist] == expected
    assert all(e.primary for e in preflist)


async def test_the_blocking_client_from_a_thread(cluster):
    """Client runs its own loop in a thread; here it is driven from a worker thread."""

    def script() -> list:
        with Client.from_config(cluster.config.path, timeout=5.0) as client:
            assert client.nodes == urls(cluster)
            obj = client.store("sync", "k", b"1", bucket_type="siblings")
            obj.value = b"2"
            assert obj.store() is obj  # bound to the blocking client: no await
            fetched = client.bucket("sync", "siblings").get("k")
            fetched.value = b"3"
            fetched.store()
            final = client.get("sync", "k", bucket_type="siblings", r="all")
            streamed = list(client.stream_keys("sync", bucket_type="siblings"))
            listed = client.bucket("sync", "siblings").list_keys()
            seen = (final.value, len(final.siblings), streamed, listed)
        with pytest.raises(RuntimeError, match="closed"):
            client.get("sync", "k")
        client.close()  # a second close is harmless
        return list(seen)

    assert await asyncio.to_thread(script) == [b"3", 1, ["k"], ["k"]]
