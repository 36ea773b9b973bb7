"""Real `ses-sender worker` processes against the SES stub, for tests about processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

from ses_sender.ses_tags import REQUEST_ID_TAG
from tests.support.moto_server import subprocess_env
from tests.support.ses_stub import SesStub

REGION = "us-east-1"


def worker_env(database_url: str, ses_stub: SesStub, **settings: str) -> dict[str, str]:
    env = subprocess_env()
    env.update(
        {
            "DATABASE_URL": database_url,
            "EMAIL_SENDER": "sender@example.com",
            "EMAIL_TRANSPORT": "ses",
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_SESV2": ses_stub.url,
            "SERVER_HOST": "https://mail.example.com",
            **settings,
        }
    )
    return env


class WorkerProcess:
    """One `ses-sender worker`, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        script = str(Path(sys.executable).with_name("ses-sender"))
        with log.open("w") as output:
            self.process = subprocess.Popen(
                [script, "worker"],
                env=env,
                cwd=log.parent,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        """SIGKILL: no drain, no last record, no goodbye."""
        self.process.kill()
        self.process.wait()

    async def stop(self) -> int:
        self.process.terminate()
        return await asyncio.to_thread(self.process.wait, 30)

    def ensure_gone(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def accepted_per_request(ses_stub: SesStub) -> Counter[int]:
    """How many times SES accepted an email for each request id (from our tag)."""
    return Counter(int(record["tags"][REQUEST_ID_TAG]) for record in ses_stub.accepted)


async def settled(ses_stub: SesStub, *, quiet_s: float = 0.5) -> None:
    """Wait until the stub has taken no request for `quiet_s`: a killed process's last
    requests may still be in the stub's socket buffers."""
    while True:
        count = len(ses_stub.received)
        await asyncio.sleep(quiet_s)
        if len(ses_stub.received) == count:
            return
