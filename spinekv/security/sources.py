"""Sources (pure): how a client at an address may prove it is a user, as Riak's sources.

Riak (riak_core_security:match_source) picks one source for a user and a peer
address: a source naming the user before one for `all`, then the most specific
CIDR. spinekv lists a method per source, so sources on the same CIDR for the
same users tie; the methods of the winning sources are those the client may
use. A `trust` method also admits a client that proves more (a token or a
password checked), and a trust source that names a `user` is that user for a
request without credentials.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ..config import Source

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(text: str | None) -> Address | None:
    """A peer address as aiohttp gives it; an IPv4 address mapped into IPv6 as plain IPv4."""
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _rank(source: Source) -> tuple[int, int]:
    # Lower ranks first: a source naming users, then the longer prefix.
    return (0 if source.users != ("all",) else 1, -source.cidr.prefixlen)


def methods_for(sources: Iterable[Source], user: str, address: Address) -> frozenset[str]:
    """The methods `user` may prove itself with from `address` (empty: none, refused)."""
    matching = [
        s
        for s in sources
        if address.version == s.cidr.version
        and address in s.cidr
        and (s.users == ("all",) or user in s.users)
    ]
    if not matching:
        return frozenset()
    best = min(_rank(s) for s in matching)
    return frozenset(s.method for s in matching if _rank(s) == best)


def trusted_user(sources: Iterable[Source], address: Address) -> str | None:
    """The user a request from `address` without credentials acts as, if a trust source
    names one and is the source that applies to that user there."""
    sources = list(sources)
    trusting = [
        s
        for s in sources
        if s.method == "trust"
        and s.user is not None
        and address.version == s.cidr.version
        and address in s.cidr
    ]
    for source in sorted(trusting, key=lambda s: -s.cidr.prefixlen):
        assert source.user is not None
        if "trust" in methods_for(sources, source.user, address):
            return source.user
    return None
