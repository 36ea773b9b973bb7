"""Test keys, certificates and SNS-style signatures, made with `cryptography`.

The canonical string is rebuilt here from the AWS documentation on purpose, independently of
`ses_sender.ses_events.sns`, so that a mistake there cannot be mirrored by the test.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)


@dataclass(frozen=True)
class KeyPair:
    key: rsa.RSAPrivateKey
    cert_pem: bytes

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed(common_name: str = "sns.amazonaws.com") -> KeyPair:
    """A stand-in for the SNS signing certificate."""
    key = new_rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = _builder(name, name, key).sign(key, hashes.SHA256())
    return KeyPair(key, certificate.public_bytes(serialization.Encoding.PEM))


def tls_ca() -> KeyPair:
    key = new_rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ses-sender test CA")])
    certificate = (
        _builder(name, name, key)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(key, certificate.public_bytes(serialization.Encoding.PEM))


def tls_server(ca: KeyPair, names: Sequence[str] = ("localhost",)) -> KeyPair:
    """A server certificate for `names` and 127.0.0.1, issued by `ca`."""
    key = new_rsa_key()
    ca_certificate = x509.load_pem_x509_certificate(ca.cert_pem)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alternatives: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alternatives.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    certificate = (
        _builder(subject, ca_certificate.subject, key)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return KeyPair(key, certificate.public_bytes(serialization.Encoding.PEM))


def self_signed_ec() -> bytes:
    """A certificate SNS would never use: its key is not RSA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    certificate = _builder(name, name, key).sign(key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
    )


def string_to_sign(envelope: dict[str, Any]) -> bytes:
    keys = NOTIFICATION_KEYS if envelope["Type"] == "Notification" else CONFIRMATION_KEYS
    return "".join(f"{k}\n{envelope[k]}\n" for k in keys if k in envelope).encode("utf-8")


def sign(envelope: dict[str, Any], key: rsa.RSAPrivateKey, version: str = "2") -> dict[str, Any]:
    """A copy of `envelope` with SignatureVersion and Signature set."""
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS version 1
    signature = key.sign(string_to_sign(envelope), padding.PKCS1v15(), algorithm)
    return {
        **envelope,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode("ascii"),
    }


def sns_timestamp(at: datetime) -> str:
    """A time the way SNS and SES write it: UTC, milliseconds, "Z"."""
    at = at.astimezone(UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"
