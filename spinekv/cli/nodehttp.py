"""How the command line calls a node over HTTP: the cluster's scheme, trusting its CA with [tls]."""

from __future__ import annotations

import functools
import os
import ssl
import urllib.request
from http.client import HTTPResponse

import click

from ..config import ClusterConfig, TlsSettings
from ..security.tls import client_context


class CannotTrust(click.ClickException):
    """The cluster CA named by [tls] cannot be read, so no node can be checked."""


@functools.cache
def _context(tls: TlsSettings) -> ssl.SSLContext:
    try:
        return client_context(tls)
    except (OSError, ssl.SSLError) as exc:
        raise CannotTrust(f"cannot read the cluster CA {tls.ca} ([tls] ca): {exc}") from None


def ssl_context(config: ClusterConfig) -> ssl.SSLContext | None:
    """What an HTTPS call to a node of `config` trusts (its CA only); None without [tls]."""
    return None if config.tls is None else _context(config.tls)


def auth_headers() -> dict[str, str]:
    """Authorization for a request: $SPINEKV_TOKEN when set, else none (the node's trust
    source for loopback, as in the local cluster's cluster.toml, then names the caller)."""
    token = os.environ.get("SPINEKV_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def urlopen(
    config: ClusterConfig, request: str | urllib.request.Request, timeout: float
) -> HTTPResponse:
    """urllib's urlopen for a node of `config`: HTTPS verified against the cluster CA, and
    $SPINEKV_TOKEN sent unless the request says who it is itself."""
    if isinstance(request, str):
        request = urllib.request.Request(request)
    for name, value in auth_headers().items():
        if not request.has_header(name):
            request.add_header(name, value)
    context = ssl_context(config)
    return urllib.request.urlopen(request, timeout=timeout, context=context)
