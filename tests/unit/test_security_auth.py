"""The Authenticator: credentials and address -> a user, or a refusal; cached, rate-limited."""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import replace

import pytest

from spinekv.config import Source, User
from spinekv.security import auth
from spinekv.security.auth import Authenticator, Refusal, parse_authorization
from spinekv.security.secrets import hash_secret
from tests.unit.test_security_users import CONFIG

ALICE = User(
    "alice", "clinical", token_hash=hash_secret("t-alice"), password_hash=hash_secret("pw")
)
LOCAL = User("local")
SOURCES = (
    Source(ipaddress.ip_network("127.0.0.1/32"), "trust", ("all",), "local"),
    Source(ipaddress.ip_network("10.0.0.0/8"), "token"),
)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def make(users=None):
    config = replace(CONFIG, sources=SOURCES)
    table = {u.name: u for u in (users or [ALICE, LOCAL])}
    clock = Clock()
    return Authenticator(config, lambda: table, clock), table, clock


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def refusal(coro) -> Refusal:
    with pytest.raises(Refusal) as caught:
        await coro
    return caught.value


async def test_a_token_a_password_or_a_trusted_address_names_the_user():
    authn, _, _ = make()
    assert await authn.authenticate("Bearer t-alice", "10.1.2.3") == ALICE
    assert await authn.authenticate(basic("alice", "pw"), "127.0.0.1") == ALICE
    assert await authn.authenticate(None, "127.0.0.1") == LOCAL
    # The record API insists on credentials even where trust applies.
    assert (await refusal(authn.authenticate(None, "127.0.0.1", trust=False))).status == 401


async def test_no_credentials_bad_ones_or_a_method_no_source_allows_are_401():
    authn, _, _ = make()
    assert (await refusal(authn.authenticate(None, "10.1.2.3"))).status == 401
    assert (await refusal(authn.authenticate("Bearer nope", "10.1.2.3"))).status == 401
    assert (await refusal(authn.authenticate(basic("alice", "bad"), "127.0.0.1"))).status == 401
    assert (await refusal(authn.authenticate(basic("nobody", "pw"), "127.0.0.1"))).status == 401
    # 10/8 allows tokens only: alice's right password is refused there.
    refused = await refusal(authn.authenticate(basic("alice", "pw"), "10.1.2.3"))
    assert refused.status == 401 and "no source" in refused.reason
    assert (await refusal(authn.authenticate("Bearer t-alice", "192.168.1.1"))).status == 401
    assert (await refusal(authn.authenticate("Bearer t-alice", None))).status == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer ", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x"],
)
def test_malformed_authorization_headers_are_refused(header):
    with pytest.raises(Refusal) as caught:
        parse_authorization(header)
    assert caught.value.status == 401


async def test_failures_past_the_limit_get_429_with_a_wait_even_with_the_right_token():
    authn, _, clock = make()
    for _ in range(CONFIG.security.failed_auth_limit):
        assert (await refusal(authn.authenticate("Bearer nope", "10.0.0.9"))).status == 401
    clock.now = 5.0
    limited = await refusal(authn.authenticate("Bearer t-alice", "10.0.0.9"))
    assert limited.status == 429 and limited.retry_after == 55
    # Another address is not held up; and the window passes.
    assert await authn.authenticate("Bearer t-alice", "10.0.0.10") == ALICE
    clock.now = 61.0
    assert await authn.authenticate("Bearer t-alice", "10.0.0.9") == ALICE


async def test_a_verified_credential_is_cached_until_the_user_changes(monkeypatch):
    authn, table, _ = make()
    assert await authn.authenticate("Bearer t-alice", "10.1.2.3") == ALICE
    checks = []
    monkeypatch.setattr(auth, "verify_secret", lambda *a: checks.append(a) or False)
    assert await authn.authenticate("Bearer t-alice", "10.1.2.3") == ALICE
    assert checks == []  # no second scrypt
    # A new token for alice: the old one no longer works, cache or not.
    table["alice"] = User("alice", "clinical", token_hash=hash_secret("t-new"))
    assert (await refusal(authn.authenticate("Bearer t-alice", "10.1.2.3"))).status == 401
    del table["alice"]
    assert (await refusal(authn.authenticate("Bearer t-alice", "10.1.2.3"))).status == 401
