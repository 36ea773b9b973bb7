"""TLS contexts on both sides of a loopback connection, from a throwaway test CA."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from tests.support.signing import tls_ca, tls_server


@dataclass(frozen=True, slots=True)
class TlsPair:
    server: ssl.SSLContext
    client: ssl.SSLContext  # trusts exactly the test CA


def loopback_tls(directory: Path) -> TlsPair:
    ca = tls_ca()
    server_pair = tls_server(ca)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(server_pair.cert_pem)
    key_file.write_bytes(server_pair.key_pem)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=ca.cert_pem.decode())
    return TlsPair(server=server, client=client)
