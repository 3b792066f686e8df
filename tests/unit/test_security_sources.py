"""Sources (pure): the most specific source for a user and an address says how it may log in."""

from __future__ import annotations

import ipaddress

from spinekv.config import Source
from spinekv.security.sources import client_address, methods_for, trusted_user


def source(cidr, method, users=("all",), user=None):
    return Source(ipaddress.ip_network(cidr), method, tuple(users), user)


LOCAL = [
    source("127.0.0.1/32", "trust", user="local"),
    source("0.0.0.0/0", "token"),
    source("0.0.0.0/0", "password"),
]
ip = ipaddress.ip_address


def test_the_most_specific_cidr_wins_and_equal_ones_pool_their_methods():
    assert methods_for(LOCAL, "alice", ip("127.0.0.1")) == {"trust"}
    assert methods_for(LOCAL, "alice", ip("127.0.0.2")) == {"token", "password"}
    assert methods_for(LOCAL, "alice", ip("::1")) == set()  # no IPv6 source: refused


def test_a_source_naming_the_user_comes_before_one_for_all():
    sources = [*LOCAL, source("0.0.0.0/0", "password", users=["bob"])]
    # Even a less specific source for bob beats the /32 for everyone.
    assert methods_for(sources, "bob", ip("127.0.0.1")) == {"password"}
    assert methods_for(sources, "alice", ip("127.0.0.1")) == {"trust"}


def test_a_trust_source_gives_its_user_to_requests_without_credentials():
    assert trusted_user(LOCAL, ip("127.0.0.1")) == "local"
    assert trusted_user(LOCAL, ip("127.0.0.2")) is None
    # A more specific source that asks for a password there takes trust away.
    sources = [source("10.0.0.0/8", "trust", user="ops"), source("10.0.0.5/32", "password")]
    assert trusted_user(sources, ip("10.0.0.4")) == "ops"
    assert trusted_user(sources, ip("10.0.0.5")) is None


def test_client_addresses_parse_as_aiohttp_gives_them():
    assert client_address("::ffff:127.0.0.1") == ip("127.0.0.1")
    assert client_address("fe80::1%eth0") == ip("fe80::1")
    assert client_address(None) is None
    assert client_address("not an address") is None
