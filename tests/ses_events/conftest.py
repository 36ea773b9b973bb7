from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.signing import KeyPair, self_signed
from tests.support.sns_vectors import VECTOR_CERT, VECTORS_DIR


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    # Fail, not skip: without the vectors the verifier is untested against real AWS output.
    if not VECTORS_DIR.is_dir():
        pytest.fail(f"SNS test vectors not found at {VECTORS_DIR.resolve()}")
    return VECTORS_DIR


@pytest.fixture(scope="session")
def vector_cert_pem(vectors_dir: Path) -> bytes:
    return (vectors_dir / VECTOR_CERT).read_bytes()


@pytest.fixture(scope="session")
def signer() -> KeyPair:
    """A stand-in for the SNS signing key and its certificate."""
    return self_signed()
