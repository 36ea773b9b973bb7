"""What the service builds the same way every time, built once per test process instead.

The service builds these anew for each Runtime, transport or sender, as it should once per
process; the tests make hundreds of them, and each costs tens of milliseconds of CPU, over a
minute across the suite. Neither is changed once built, so handing out the same one again
changes nothing the tests look at:

- TLS client contexts: every Runtime (one per database test) builds an HTTPS fetcher, and
  webhook senders and SES transports build their own, each `ssl.create_default_context()`
  reading the CA bundle again (~40 ms for the system's). Here each distinct one is built
  once: same CA file (the same file on disk), same environment, same context.
- botocore's data: each SES transport makes an SDK client to resolve its endpoint, and each
  new session loads the endpoint rules and the SES model from JSON again (~150 ms). Here the
  sessions share one loader, as clients of one session do.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import botocore.loaders
from aiobotocore.session import AioSession  # type: ignore[import-untyped]
from aiobotocore.session import get_session as new_session

# The modules of the service that build TLS client contexts with `ssl.create_default_context`.
TLS_MODULES = (
    "ses_sender.ses_events.sns",
    "ses_sender.transports.ses",
    "ses_sender.webhooks.worker",
)
# The modules of the service that make aiobotocore sessions with `get_session`.
BOTOCORE_MODULES = ("ses_sender.transports.ses",)

_Key = tuple[object, ...]


class SharedTrustStores:
    """Stands in for the `ssl` module in `TLS_MODULES`: `create_default_context` builds a
    context once per distinct call; everything else is the real module's."""

    def __init__(self) -> None:
        self._contexts: dict[_Key, ssl.SSLContext] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(ssl, name)

    def create_default_context(
        self,
        purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
        *,
        cafile: str | None = None,
        capath: str | None = None,
        cadata: str | bytes | None = None,
    ) -> ssl.SSLContext:
        key = (purpose, cafile, _identity(cafile), capath, cadata, *_environment())
        if key not in self._contexts:
            self._contexts[key] = ssl.create_default_context(
                purpose, cafile=cafile, capath=capath, cadata=cadata
            )
        return self._contexts[key]


def _identity(path: str | None) -> tuple[int, int, int] | None:
    """Which file is at `path` now: a CA file written again is read again."""
    if path is None:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns)


def _environment() -> tuple[str | None, str | None]:
    """Where OpenSSL looks for the default trust store."""
    return os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")


class SharedBotocoreData:
    """Stands in for `aiobotocore.session.get_session` in `BOTOCORE_MODULES`: each session is
    new, with its own credentials and configuration, but all load their data through one
    loader, which keeps what it has read."""

    def __init__(self) -> None:
        self._loader = botocore.loaders.create_loader()

    def get_session(self, env_vars: dict[str, Any] | None = None) -> AioSession:
        session = new_session(env_vars)
        session.register_component("data_loader", self._loader)
        return session
