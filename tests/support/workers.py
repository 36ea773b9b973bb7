"""In-process workers: a transport that records what it is given, a claimer as a worker's, and
the type of the `make_worker` fixture that builds workers on the real clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ses_sender.composition import Runtime
from ses_sender.delivery.claimer import Claimer
from ses_sender.delivery.leases import Leases
from ses_sender.delivery.ports import ClaimGate
from ses_sender.delivery.worker import Worker
from ses_sender.models import Request, RequestStatus
from ses_sender.stats.hooks import StatsHooks
from ses_sender.transports.base import OutgoingEmail, SendError
from tests.support.polling import wait_until, while_running
from tests.support.rows import requests_by_id

# A worker factory: make_worker(transport, rate=..., **Worker overrides) -> Worker.
WorkerFactory = Callable[..., Worker]


def claimer_with_leases(
    runtime: Runtime, gates: Sequence[ClaimGate], *, lease_s: float = 60.0
) -> tuple[Claimer, Leases]:
    """A claimer as a worker's, and the leases it takes (sends may last 5 s)."""
    leases = Leases(runtime.sessionmaker, clock=runtime.clock, lease_s=lease_s, send_timeout_s=5.0)
    claimer = Claimer(
        runtime.sessionmaker, gates=gates, counter=StatsHooks(), clock=runtime.clock, leases=leases
    )
    return claimer, leases


def claimer_for(runtime: Runtime, gates: Sequence[ClaimGate]) -> Claimer:
    return claimer_with_leases(runtime, gates)[0]


@dataclass
class RecordingTransport:
    """Accepts every email (or raises what a test scripted for an address); remembers them."""

    name: str = "recording"
    sent: list[OutgoingEmail] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    failures: dict[str, list[SendError]] = field(default_factory=dict)
    latency_s: float = 0.0
    begun: int = 0  # sends begun, whether or not they have returned

    async def send(self, email: OutgoingEmail, *, on_sent: Callable[[], None] | None = None) -> str:
        self.begun += 1
        if on_sent is not None:
            on_sent()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        scripted = self.failures.get(email.to)
        if scripted:
            raise scripted.pop(0)
        self.sent.append(email)
        self.sent_at.append(asyncio.get_running_loop().time())
        return f"ses-{email.request_id}"

    async def close(self) -> None:
        return None


async def send_with_worker(
    runtime: Runtime, worker: Worker, ids: list[int], status: RequestStatus = RequestStatus.SENT
) -> dict[int, Request]:
    """Run `worker` until every request of `ids` has `status`, stop it; the rows then."""
    task = asyncio.create_task(worker.run())

    async def done() -> bool:
        rows = await requests_by_id(runtime)
        return all(rows[i].status == status for i in ids)

    try:
        await wait_until(while_running(task, done), f"requests {ids} {status.name}")
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)
    return await requests_by_id(runtime)
