"""Headless Chromium for the browser tests: Debian's `chromium` package, driven by Playwright
(never a browser Playwright downloads), and a `ses-sender serve` process for it to look at.

Screenshots go to `test-artifacts/browser/` at the repository root (or $SES_SENDER_ARTIFACTS),
kept after the run for people to look at.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.support.polling import wait_until
from tests.support.ports import free_port

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(
    os.environ.get("SES_SENDER_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
# How long a page and an assertion on it may take (Playwright's default is 5 s): a page on a
# shared two-CPU machine, with a worker process and a database behind it.
BROWSER_TIMEOUT_MS = 60_000
# Starting Python, importing the service and migrating take seconds on a quiet machine, minutes
# on a crowded one.
START_DEADLINE_S = 300.0


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    expect.set_options(timeout=BROWSER_TIMEOUT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            await browser.close()


async def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot kept as an artifact of the run."""
    path = ARTIFACTS / "browser" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=True)
    return path


class ServeProcess:
    """One `ses-sender serve` (API and worker) on a free loopback port, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log
        env = {**env, "SERVER_PORT": str(port), "SERVER_BIND": "127.0.0.1"}
        script = str(Path(sys.executable).with_name("ses-sender"))
        with log.open("w") as output:
            self.process = subprocess.Popen(
                [script, "serve"],
                env=env,
                cwd=log.parent,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def output(self) -> str:
        return self.log.read_text()

    async def ready(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url) as client:

            async def healthy() -> bool:
                if self.process.poll() is not None:
                    pytest.fail(f"ses-sender serve exited early:\n{self.output()}")
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(
                healthy,
                f"ses-sender serve to answer /health (log: {self.log})",
                within_s=START_DEADLINE_S,
            )

    def ensure_gone(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
