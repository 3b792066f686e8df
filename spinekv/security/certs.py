"""Keys and X.509 certificates (`cryptography`): a local CA and the node certificates it signs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .tlsplan import Issue

__all__ = ["Signer", "ca_certificate", "cert_pem", "key_pem", "load_signer", "new_key", "sign"]

Key = ec.EllipticCurvePrivateKey
# A certificate is accepted from a few minutes before it was made: clocks of a cluster differ.
_BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Signer:
    """A CA's key and certificate: what signs node certificates."""

    key: Key
    cert: x509.Certificate


def new_key() -> Key:
    # P-256: small, fast, and spoken by every TLS 1.2+ client (curl, Python's ssl, Riak's client).
    return ec.generate_private_key(ec.SECP256R1())


def _builder(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def ca_certificate(issue: Issue, key: Key, days: int) -> Signer:
    """A self-signed CA that may sign node certificates and nothing that signs further."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issue.common_name)])
    cert = (
        _builder(name, name, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .sign(key, hashes.SHA256())
    )
    return Signer(key, cert)


def sign(signer: Signer, issue: Issue, key: Key, days: int) -> x509.Certificate:
    """A node's certificate: CN = its name, SAN = the names it answers to.

    Both server and client use: a node presents it on its HTTP port and, with mutual
    TLS between nodes, when it dials a peer.
    """
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issue.common_name)])
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in issue.dns_names]
    names += [x509.IPAddress(ip) for ip in issue.ip_addresses]
    return (
        _builder(subject, signer.cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key()),
            critical=False,
        )
        .sign(signer.key, hashes.SHA256())
    )


def key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_signer(cert_pem_data: bytes, key_pem_data: bytes) -> Signer:
    """The CA an earlier `tls init` made, from its files; ValueError if they are not a pair."""
    key = serialization.load_pem_private_key(key_pem_data, password=None)
    cert = x509.load_pem_x509_certificate(cert_pem_data)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ValueError("the CA key does not belong to the CA certificate")
    return Signer(key, cert)
