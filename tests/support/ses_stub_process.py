"""The SES stub in a process of its own, driven over its `/_stub/...` controls.

For tests about timing. The stub's stamps come from the kernel wherever it runs, but in the
test's own process a pause of the test's event loop (a garbage collection, a database poll) would
hold up its answers, and with them the workers' sends waiting for a connection, and its CPU
would be the test's.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.support.moto_server import subprocess_env
from tests.support.ses_stub import HOST


class SesStubProcess:
    def __init__(self, url: str) -> None:
        self.url = url
        self._client = httpx.AsyncClient(base_url=url, timeout=30)

    async def configure(self, settings: dict[str, Any]) -> None:
        (await self._client.post("/_stub/config", json=settings)).raise_for_status()

    async def fail_next(self, preset: str, times: int) -> None:
        response = await self._client.post("/_stub/script", json={"failures": [preset] * times})
        response.raise_for_status()

    async def received(self) -> list[dict[str, Any]]:
        response = await self._client.get("/_stub/received")
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()["received"]
        return records

    async def counts(self) -> dict[str, int]:
        response = await self._client.get("/_stub/counts")
        response.raise_for_status()
        counts: dict[str, int] = response.json()
        return counts

    async def close(self) -> None:
        await self._client.aclose()


@contextmanager
def run_ses_stub_process() -> Iterator[SesStubProcess]:
    """Start `python -m tests.support.ses_stub` on a free port; stop it afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.ses_stub", "--host", HOST, "--port", "0"],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"the SES stub did not start (it printed {port!r})")
        yield SesStubProcess(f"http://{HOST}:{port}")
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
