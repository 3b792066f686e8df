"""HTTP security on real in-process nodes: users, grants and sources decide who may do what.

The loopback address 127.0.0.1 is trusted as `local` (every permission on `any`,
which never reaches the record API's `records` type); requests from 127.0.0.2
(a client bound to that address) must prove who they are, as a stranger on the
network would.
"""

from __future__ import annotations

import base64
import json
import logging

import aiohttp
import pytest

from spinekv.security.secrets import hash_secret
from tests.inproc import inproc_cluster
from tests.support import eventually

TOKENS = {"records-user": "t-records", "operator": "t-operator", "reader": "t-reader"}
EXTRA = f"""
[[source]]
cidr = "0.0.0.0/0"
method = "token"

[[source]]
cidr = "0.0.0.0/0"
method = "password"

[[user]]
name = "records-user"
token_hash = "{hash_secret(TOKENS["records-user"])}"
grants = [{{ on = "records", permissions = ["get", "put", "delete", "list", "index", "props"] }}]

[[user]]
name = "operator"
token_hash = "{hash_secret(TOKENS["operator"])}"
password_hash = "{hash_secret("pw-operator")}"
grants = [{{ on = "any", permissions = ["admin", "get"] }}]

[[user]]
name = "reader"
token_hash = "{hash_secret(TOKENS["reader"])}"
grants = [{{ on = "any", permissions = ["get", "put", "delete", "list", "index", "props"] }}]
"""


@pytest.fixture
async def cluster(tmp_path):
    async with inproc_cluster(tmp_path, extra=EXTRA) as c:
        yield c


@pytest.fixture
async def stranger():
    """A client on 127.0.0.2: not trusted, so it sends credentials."""
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=20)
    ) as session:
        yield session


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def call(session, method, url, headers=None, **kwargs) -> tuple[int, str, dict]:
    async with session.request(method, url, headers=headers, **kwargs) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


def raw_kv(base: str, bucket_type: str) -> list[tuple[str, str, dict]]:
    """One request of each kind the KV API has: (method, url, extra arguments)."""
    prefix = f"{base}/types/{bucket_type}/buckets/patients"
    put = {"data": b"{}", "headers": {"Content-Type": "application/json"}}
    return [
        ("PUT", f"{prefix}/keys/9990000001", put),
        ("GET", f"{prefix}/keys/9990000001", {}),
        ("GET", f"{prefix}/keys?keys=true", {}),
        ("GET", f"{prefix}/index/name_bin/smith", {}),
        ("GET", f"{base}/types/{bucket_type}/props", {}),
        ("DELETE", f"{prefix}/keys/9990000001", {}),
    ]


async def test_raw_kv_on_the_records_type_is_403_and_logged_without_a_grant(
    cluster, http, stranger, caplog
):
    base = cluster.url("n1")
    caplog.set_level(logging.WARNING, "spinekv.security")
    for method, url, args in raw_kv(base, "records"):
        # Trusted loopback (`local`, all permissions on any) and a token user granted on any.
        status, _, _ = await call(http, method, url, **args)
        assert status == 403, (method, url)
        headers = {**args.get("headers", {}), **bearer("reader")}
        status, body, _ = await call(stranger, method, url, **{**args, "headers": headers})
        assert status == 403 and "no" in body, (method, url, body)
    refusals = [r.getMessage() for r in caplog.records if r.name == "spinekv.security"]
    assert any("from 127.0.0.1:" in m and "'local'" in m for m in refusals), refusals
    assert any("from 127.0.0.2:" in m and "'reader'" in m for m in refusals), refusals
    # The same user, the same requests, on another type: allowed.
    for method, url, args in raw_kv(base, "siblings"):
        headers = {**args.get("headers", {}), **bearer("reader")}
        status, _, _ = await call(stranger, method, url, **{**args, "headers": headers})
        assert status in (200, 204), (method, url, status)


async def test_a_user_granted_on_the_records_type_reaches_it(cluster, stranger):
    answers = []
    for method, url, args in raw_kv(cluster.url("n1"), "records"):
        headers = {**args.get("headers", {}), **bearer("records-user")}
        status, _, _ = await call(stranger, method, url, **{**args, "headers": headers})
        answers.append((method, url.rsplit("/", 1)[-1], status))
    assert all(status in (200, 204) for *_, status in answers), answers


async def test_the_records_types_props_stay_what_the_record_layer_needs(cluster, stranger):
    url = f"{cluster.url('n1')}/types/records/props"
    for props, reason in (
        ({"allow_mult": False}, "allow_mult must stay true"),
        ({"n_val": 1}, "n_val >= 3"),
        ({"last_write_wins": True, "dvv_enabled": False}, "last_write_wins must stay false"),
    ):
        status, body, _ = await call(
            stranger, "PUT", url, bearer("records-user"), json={"props": props}
        )
        assert status == 400 and reason in body, (props, status, body)
    bucket = f"{cluster.url('n1')}/types/records/buckets/consent/props"
    status, body, _ = await call(
        stranger, "PUT", bucket, bearer("records-user"), json={"props": {"n_val": 2}}
    )
    assert status == 400 and "n_val >= 3" in body, body
    status, _, _ = await call(
        stranger, "PUT", url, bearer("records-user"), json={"props": {"n_val": 4}}
    )
    assert status == 204


async def test_admin_needs_the_admin_permission(cluster, stranger):
    base = cluster.url("n1")
    leave = f"{base}/admin/stage?action=leave&node=n5"
    for method, url in (("POST", leave), ("POST", f"{base}/admin/commit")):
        status, body, _ = await call(stranger, method, url, bearer("reader"))
        assert status == 403 and "admin" in json.loads(body)["error"], (url, body)
    assert cluster.nodes["n1"].membership.state.staged_changes() == {}
    # With admin: staged, then cleared; a commit of nothing reaches the handler (409).
    status, _, _ = await call(stranger, "POST", leave, bearer("operator"))
    assert status == 200
    status, _, _ = await call(stranger, "POST", f"{base}/admin/clear", bearer("operator"))
    assert status == 200
    status, body, _ = await call(stranger, "POST", f"{base}/admin/commit", bearer("operator"))
    assert status == 409, body


async def test_who_are_you_401_ping_open_stats_for_any_user(cluster, stranger):
    base = cluster.url("n1")
    for path in ("/stats", "/admin/status", "/buckets/b/keys/k", "/", "/openapi.json"):
        status, _, headers = await call(stranger, "GET", base + path)
        assert status == 401 and "Bearer" in headers["WWW-Authenticate"], path
    assert (await call(stranger, "GET", base + "/ping"))[0] == 200
    # Any user may read the stats and status; none needs a grant for them.
    for path in ("/stats", "/admin/status", "/admin/node"):
        assert (await call(stranger, "GET", base + path, bearer("records-user")))[0] == 200


async def test_basic_auth_as_the_riak_client_sends_it(cluster, stranger):
    url = f"{cluster.url('n2')}/admin/ring"
    assert (await call(stranger, "GET", url, basic("operator", "pw-operator")))[0] == 200
    assert (await call(stranger, "GET", url, basic("operator", "wrong")))[0] == 401
    assert (await call(stranger, "GET", url, basic("nobody", "pw-operator")))[0] == 401


async def test_eleven_bad_tokens_get_429_with_retry_after(cluster, stranger, caplog):
    caplog.set_level(logging.WARNING, "spinekv.security")
    url = f"{cluster.url('n3')}/buckets/b/keys/k"
    bad = {"Authorization": "Bearer guessed-token"}
    for _ in range(cluster.config.security.failed_auth_limit):
        assert (await call(stranger, "GET", url, bad))[0] == 401
    status, _, headers = await call(stranger, "GET", url, bad)
    assert status == 429 and int(headers["Retry-After"]) > 0
    # The right token is held up too while the address waits; loopback is not.
    assert (await call(stranger, "GET", url, bearer("reader")))[0] == 429
    messages = [r.getMessage() for r in caplog.records if r.name == "spinekv.security"]
    assert sum("from 127.0.0.2" in m for m in messages) == 12
    assert not any("guessed-token" in m for m in messages)


async def test_a_user_added_at_runtime_works_on_every_node_and_stops_once_deleted(
    cluster, http, stranger
):
    n1 = cluster.url("n1")
    user = f"{n1}/admin/users/newcomer"
    body = {"role": None, "token_hash": hash_secret("t-newcomer")}
    status, text, _ = await call(http, "POST", user, json=body)
    assert status == 201 and json.loads(text)["token"] is True, text
    assert "scrypt" not in text
    grant = {"permissions": ["get"], "on": "siblings"}
    assert (await call(http, "POST", f"{user}/grant", json=grant))[0] == 200
    token = {"Authorization": "Bearer t-newcomer"}

    async def status_everywhere(path: str) -> set[int]:
        return {
            (await call(stranger, "GET", cluster.url(name) + path, token))[0]
            for name in cluster.nodes
        }

    async def allowed() -> bool:
        return await status_everywhere("/types/siblings/buckets/b/keys/k") == {404}

    await eventually(allowed, what="the new user to be known on every node")
    assert await status_everywhere("/types/default/buckets/b/keys/k") == {403}
    assert (await call(http, "DELETE", user))[0] == 200

    async def refused() -> bool:
        return await status_everywhere("/types/siblings/buckets/b/keys/k") == {401}

    await eventually(refused, what="the deleted user to be refused on every node")
