"""Raw peer-port clients for tests: frames, the handshake spoken by hand, certificates."""

from __future__ import annotations

import asyncio
import datetime
import struct
from pathlib import Path
from typing import Any

import msgpack

from spinekv.config import TlsSettings
from spinekv.security import handshake as hs

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
    """A CA and a certificate (CN = the node's name) for each of `names`, as [tls] names them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def subject(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(subject(ca_name))
        .issuer_name(subject(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject(name))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, folder / f"{name}.key")
    return TlsSettings(ca=folder / "ca.pem", cert="{node}.pem", key="{node}.key", root=folder)
