"""A real `ses-sender serve` process on a free loopback port, for tests of what talks to it over
HTTP (the command-line client)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.moto_server import subprocess_env
from tests.support.polling import wait_until
from tests.support.ports import free_port

SCRIPT = Path(sys.executable).with_name("ses-sender")
SERVICE_KEY = "service-key-0123456789"


@dataclass(frozen=True)
class RunningService:
    process: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text()


@asynccontextmanager
async def running_service(
    database_url: str, directory: Path, *, role: str = "serve", **settings: str
) -> AsyncIterator[RunningService]:
    """`ses-sender serve` (or `role`: `api`) on `database_url` (migrated), writing emails to an
    outbox in `directory`, its key SERVICE_KEY; killed at the end."""
    port = free_port()
    env = subprocess_env()
    env.update(
        {
            "DATABASE_URL": database_url,
            "API_KEY": SERVICE_KEY,
            "EMAIL_TRANSPORT": "outbox",
            "OUTBOX_DIR": str(directory / "outbox"),
            "SERVER_PORT": str(port),
            "SERVER_BIND": "127.0.0.1",
            "SERVER_HOST": f"http://127.0.0.1:{port}",
            "EMAIL_RATE": "200",
            **settings,
        }
    )
    log = directory / "service.log"
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, waited on in a thread
            [str(SCRIPT), role],
            env=env,
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    service = RunningService(process, port, log)
    try:
        await _healthy(service)
        yield service
    finally:
        if process.poll() is None:
            process.kill()
        await asyncio.to_thread(process.wait)


async def _healthy(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:

        async def answers() -> bool:
            if service.process.poll() is not None:
                pytest.fail(f"ses-sender exited early:\n{service.output()}")
            try:
                return (await client.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        # Start-up imports the whole service: tens of seconds on a loaded 2-CPU machine.
        await wait_until(
            answers, f"ses-sender to answer /health (its log: {service.log})", within_s=120
        )
