"""TLS contexts from the [tls] files: HTTPS for clients, mutual TLS between nodes."""

from __future__ import annotations

import ssl
from typing import Any

from ..config import TlsSettings

__all__ = ["client_context", "peer_common_name", "server_context"]


def server_context(tls: TlsSettings, node: str, *, require_client_cert: bool) -> ssl.SSLContext:
    """What `node` presents on a listening port; with require_client_cert (the peer port) a
    dialler must present a certificate the cluster CA signed."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(tls.cert_for(node)), str(tls.key_for(node)))
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx


def client_context(tls: TlsSettings, node: str | None = None) -> ssl.SSLContext:
    """Trusts the cluster CA only; a node dialling a peer (`node` given) presents its own."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if node is not None:
        ctx.load_cert_chain(str(tls.cert_for(node)), str(tls.key_for(node)))
    return ctx


def peer_common_name(ssl_object: Any) -> str | None:
    """The CN of the certificate the other end presented (a node's name), if it sent one."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
