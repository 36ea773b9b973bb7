"""Real `ses-sender worker` processes against the SES stub, for tests about processes (the
`start_worker` fixture starts them), and what the stub tells of their sends."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ses_sender.composition import Runtime
from ses_sender.models import Request, RequestStatus
from ses_sender.ses_tags import REQUEST_ID_TAG
from tests.support.moto_server import subprocess_env
from tests.support.polling import wait_until
from tests.support.ses_stub import SesStub
from tests.support.ses_stub_process import SesStubProcess

REGION = "us-east-1"


def worker_env(
    database_url: str, ses_stub: SesStub | SesStubProcess, **settings: str
) -> dict[str, str]:
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
    return accepted_per_request_of(ses_stub.accepted)


def accepted_per_request_of(records: list[dict[str, Any]]) -> Counter[int]:
    """The same, from the stub's records of accepted sends."""
    return Counter(int(record["tags"][REQUEST_ID_TAG]) for record in records)


async def settled(ses_stub: SesStub) -> None:
    """Wait until the stub has read every request of processes that are gone (a killed
    worker's last requests may still be in the stub's socket buffers)."""

    async def idle() -> bool:
        return ses_stub.idle()

    await wait_until(idle, "the SES stub to read what the stopped workers sent")


StartWorker = Callable[[dict[str, str]], WorkerProcess]


# An SES account whose quota does not bind: the rate is ours to set.
ROOMY_ACCOUNT = {"max_send_rate": 100_000, "max_24_hour_send": 10_000_000}


def roomy_account(ses_stub: SesStub) -> None:
    ses_stub.configure(ROOMY_ACCOUNT)


async def all_sent(runtime: Runtime, ids: list[int]) -> bool:
    """A count, not the rows: this runs in the loop that also serves the SES stub."""
    async with runtime.sessionmaker() as session:
        sent = await session.scalar(
            select(func.count()).where(Request.id.in_(ids), Request.status == RequestStatus.SENT)
        )
    return sent == len(ids)


async def until_all_sent(runtime: Runtime, ids: list[int], what: str) -> None:
    """Wait until every request of `ids` is Sent; `what`: the wait, named for its failure."""

    async def sent() -> bool:
        return await all_sent(runtime, ids)

    await wait_until(sent, what, within_s=150)


async def until_accepted(ses_stub: SesStub, count: int) -> None:
    """Wait until the stub has accepted `count` sends: a campaign under way."""

    async def enough() -> bool:
        return len(ses_stub.accepted) >= count

    await wait_until(enough, f"{count} emails at SES", within_s=120)


def assert_each_sent_once(ses_stub: SesStub, ids: list[int]) -> None:
    accepted = accepted_per_request(ses_stub)
    assert set(accepted) == set(ids), "lost"
    assert {i: n for i, n in accepted.items() if n > 1} == {}, "sent twice"
