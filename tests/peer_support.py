"""Raw peer-port clients for tests: frames, the handshake spoken by hand, certificates."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import msgpack

from spinekv.config import TlsSettings
from spinekv.security import certs
from spinekv.security import handshake as hs
from spinekv.security.tlsplan import Issue

# The secret the transports of a test share (production reads the cluster's secret file).
SECRET = b"test-cluster-secret-0123456789ab"
KIND_REQUEST, KIND_REPLY, KIND_ERROR, KIND_HELLO, KIND_CHALLENGE, KIND_PROOF = range(6)


def frame(obj: Any) -> bytes:
    payload = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> list:
    (size,) = struct.unpack(">I", await reader.readexactly(4))
    return msgpack.unpackb(await reader.readexactly(size), raw=False)


def hello(name: str, nonce: bytes, **fields: Any) -> bytes:
    return frame([KIND_HELLO, 0, {**fields, "name": name, "nonce": nonce}])


async def handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    name: str,
    *,
    secret: bytes = SECRET,
    cluster: str = "",
    **fields: Any,
) -> bytes:
    """Speak the dialler's side of the handshake by hand; returns the bytes sent (to replay)."""
    nonce_d = hs.new_nonce()
    first = hello(name, nonce_d, **({"cluster": cluster} if cluster else {}), **fields)
    writer.write(first)
    kind, rid, body = await read_frame(reader)
    assert (kind, rid) == (KIND_CHALLENGE, 0), (kind, rid, body)
    key = hs.handshake_key(secret)
    proof = hs.dial_proof(key, cluster, name, body["name"], nonce_d, body["nonce"])
    second = frame([KIND_PROOF, 0, {"proof": proof}])
    writer.write(second)
    return first + second


def make_certificates(folder: Path, names: list[str], *, ca_name: str = "test CA") -> TlsSettings:
    """A CA and a certificate (CN = the node's name) for each of `names`, as [tls] names them,
    made by the code `spinekv admin tls init` uses."""
    ca_key = certs.new_key()
    ca = certs.ca_certificate(Issue(ca_name, folder / "ca.pem", folder / "ca.key"), ca_key, 1)
    (folder / "ca.pem").write_bytes(certs.cert_pem(ca.cert))
    for name in names:
        issue = Issue(name, folder / f"{name}.pem", folder / f"{name}.key", dns_names=(name,))
        key = certs.new_key()
        issue.cert.write_bytes(certs.cert_pem(certs.sign(ca, issue, key, 1)))
        issue.key.write_bytes(certs.key_pem(key))
    return TlsSettings(ca=folder / "ca.pem", cert="{node}.pem", key="{node}.key", root=folder)
