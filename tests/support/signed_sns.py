"""A runtime that trusts a test SNS signing key, and a publisher that signs with it.

For tests outside `tests/ses_events/` that post signed SNS notifications to the real endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ses_sender.composition import Runtime
from ses_sender.config import Settings
from ses_sender.ses_events.sns import CertificateStore
from tests.clock import FakeClock
from tests.ses_events.fakes import FakeFetch
from tests.ses_events.signing import self_signed
from tests.ses_events.test_endpoints import CERT_URL, Publisher, events_runtime

SIGNER = self_signed()


@asynccontextmanager
async def signed_sns_runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    """Tables emptied afterwards, as the `runtime` fixture does."""
    store = CertificateStore(FakeFetch())
    store.seed(CERT_URL, SIGNER.cert_pem)
    async with events_runtime(settings, clock, store) as runtime:
        yield runtime


def publisher(clock: FakeClock) -> Publisher:
    return Publisher(SIGNER.key, clock)
