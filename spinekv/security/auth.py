"""Who is asking: a request's credentials and address -> a user, or a refusal saying why.

A client proves who it is with `Authorization: Bearer TOKEN`, with HTTP basic
(`user:password`, as the riak Python client sends with security on), or, from an
address a trust source covers, with nothing. The sources say which of these a
user may use from where (sources.py). Secrets are checked against scrypt hashes
(~80 ms each, in a worker thread so the node keeps serving); a credential that
verified once is remembered by its digest, for as long as the user's stored hash
is unchanged. An address whose credentials keep failing is told to wait (429).
Nothing here fails open: every path that does not end in a user is a Refusal.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..config import ClusterConfig, User
from .ratelimit import FailureLimiter
from .secrets import hash_secret, verify_secret
from .sources import Address, client_address, methods_for, trusted_user

# Checks of secrets run at once at most; more wait their turn, so a flood of guesses
# costs the node a bounded share of its CPU and reaches the rate limit while waiting.
MAX_CONCURRENT_CHECKS = 2
CACHE_LIMIT = 4096


@functools.cache
def _dummy_hash() -> str:
    # A password check for a user that does not exist costs a hash too, so the time
    # taken does not say which user names exist.
    return hash_secret("spinekv: no such user")


class Refusal(Exception):
    """401 (who are you?), 403 (not allowed) or 429 (wait `retry_after` seconds)."""

    def __init__(self, status: int, reason: str, retry_after: int = 0) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Credentials:
    method: str  # "token" or "password"
    secret: str
    name: str | None = None  # the user basic auth names

    @property
    def digest(self) -> bytes:
        raw = f"{self.method}\0{self.name or ''}\0{self.secret}".encode()
        return hashlib.sha256(raw).digest()


def parse_authorization(header: str | None) -> Credentials | None:
    """The credentials an Authorization header carries; None for no header; Refusal if bad."""
    if header is None or not header.strip():
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        if not value:
            raise Refusal(401, "an empty bearer token")
        return Credentials("token", value)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Refusal(401, "basic credentials that are not base64 of user:password") from None
        name, colon, password = decoded.partition(":")
        if not colon or not name or not password:
            raise Refusal(401, "basic credentials that are not user:password")
        return Credentials("password", password, name)
    raise Refusal(401, "an Authorization scheme other than Bearer or Basic")


def _stored_hash(user: User, method: str) -> str | None:
    return user.token_hash if method == "token" else user.password_hash


class Authenticator:
    """Credentials -> User for one node; holds the cache of verified credentials and the
    failed-authentication counts, both per node."""

    def __init__(
        self,
        config: ClusterConfig,
        users: Callable[[], Mapping[str, User]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._users = users
        self._clock = clock
        self.limiter = FailureLimiter(
            config.security.failed_auth_limit, config.security.failed_auth_window_s
        )
        # credential digest -> (user name, the stored hash it verified against)
        self._verified: dict[bytes, tuple[str, str]] = {}
        self._checking = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)

    async def authenticate(
        self, authorization: str | None, peer: str | None, *, trust: bool = True
    ) -> User:
        """The user a request is from; `trust=False` insists on credentials."""
        address = client_address(peer)
        if address is None:
            raise Refusal(401, f"no usable client address ({peer!r})")
        credentials = parse_authorization(authorization)
        if credentials is None:
            return self._trusted(address, trust)
        self._wait_check(address)
        user = self._cached(credentials)
        if user is None:
            async with self._checking:
                # Guesses that queued up meet the limit here, without paying for a hash.
                self._wait_check(address)
                user = await asyncio.to_thread(self._verify, credentials, self._users())
            if user is None:
                self.limiter.failed(address, self._clock())
                raise Refusal(401, f"a {credentials.method} that matches no user")
            self._remember(credentials, user)
        allowed = methods_for(self.config.sources, user.name, address)
        if credentials.method not in allowed and "trust" not in allowed:
            raise Refusal(
                401, f"no source lets user {user.name!r} use a {credentials.method} from {address}"
            )
        return user

    def _trusted(self, address: Address, trust: bool) -> User:
        name = trusted_user(self.config.sources, address) if trust else None
        if name is None:
            raise Refusal(401, "no credentials")
        user = self._users().get(name)
        if user is None:
            raise Refusal(401, f"the trusted user {name!r} does not exist")
        return user

    def _wait_check(self, address: Address) -> None:
        wait = self.limiter.retry_after(address, self._clock())
        if wait > 0:
            raise Refusal(429, "too many failed authentications", max(1, math.ceil(wait)))

    def _cached(self, credentials: Credentials) -> User | None:
        found = self._verified.get(credentials.digest)
        if found is None:
            return None
        name, stored = found
        user = self._users().get(name)
        if user is None or _stored_hash(user, credentials.method) != stored:
            del self._verified[credentials.digest]  # the user changed or went away
            return None
        return user

    def _remember(self, credentials: Credentials, user: User) -> None:
        stored = _stored_hash(user, credentials.method)
        if stored is None:
            return
        if len(self._verified) >= CACHE_LIMIT:
            self._verified.clear()
        self._verified[credentials.digest] = (user.name, stored)

    @staticmethod
    def _verify(credentials: Credentials, users: Mapping[str, User]) -> User | None:
        """The user these credentials prove (runs in a worker thread: scrypt is slow)."""
        if credentials.method == "password":
            user = users.get(credentials.name or "")
            stored = None if user is None else user.password_hash
            ok = verify_secret(credentials.secret, stored or _dummy_hash())
            return user if ok and stored is not None else None
        for user in users.values():
            if user.token_hash is not None and verify_secret(credentials.secret, user.token_hash):
                return user
        return None
