"""The delivery loop: claim due deliveries, POST them signed, record what the receiver said.

It runs beside the email worker (`serve`, `worker`), never in the request that took the event
in: a slow or dead receiver holds up at most `concurrency` deliveries, each for at most the
timeout, and nothing else. Delivery is at least once: a process that dies between a receiver's
2xx and its record delivers that event again when the lease runs out. Receivers drop the repeat
by the `X-Ses-Sender-Delivery` header, the same on every try of one delivery.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender import instruments
from ses_sender.clock import Clock
from ses_sender.db import errors as database
from ses_sender.tasks import TRANSIENT_ERRORS, wait_any
from ses_sender.webhooks import network, service
from ses_sender.webhooks.repository import ClaimedDelivery, Target
from ses_sender.webhooks.retry import WebhookRetryPolicy
from ses_sender.webhooks.service import Attempt, Delivered, NotDelivered
from ses_sender.webhooks.signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_V2_HEADER,
    TIMESTAMP_HEADER,
    signature,
    signature_v2,
)

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0  # a queued event goes out within this, whichever process queued it
LEASE_MARGIN_S = 30.0  # a lease outlives the longest attempt by this much
USER_AGENT = "ses-sender-webhooks/1"


class WebhookSender:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        retry: WebhookRetryPolicy,
        concurrency: int,
        timeout_s: float,
        allow_private: bool = False,
        ssl_cert_file: str | None = None,
    ) -> None:
        """`allow_private`: post to receivers inside the network too (WEBHOOK_ALLOW_PRIVATE)."""
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._retry = retry
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._lease = timedelta(seconds=timeout_s + LEASE_MARGIN_S)
        self._allow_private = allow_private
        # cafile=None: the default trust store, which OpenSSL takes from SSL_CERT_FILE if set.
        self._ssl_context = ssl.create_default_context(cafile=ssl_cert_file)
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Attempts made, waiting to be recorded (None: the webhook went away meanwhile).
        self._finished: list[tuple[ClaimedDelivery, Attempt | None]] = []
        self._http: aiohttp.ClientSession | None = None
        self._outage_log = database.OutageLog(log)

    def stop(self) -> None:
        """Stop claiming; `run` then lets deliveries under way finish and returns."""
        self._stopping.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    started = self._start(*await self._record_and_claim(self._free_slots()))
                except TRANSIENT_ERRORS as error:
                    # What finished stays in memory for the next try; the leases hold meanwhile.
                    self._outage_log.log(
                        logging.WARNING,
                        "deliveries",
                        "webhook deliveries: database unavailable: %s; trying again",
                        database.describe(error),
                    )
                    started = 0
                if not started or not self._free_slots():
                    await self._wait_for_slot_or_work()
        finally:
            await self._drain()
            await self.close()

    async def deliver_due(self) -> int:
        """Deliver what is due now, up to `concurrency`, wait, and record it; how many."""
        deliveries, targets = await self._record_and_claim(self._concurrency)
        await asyncio.gather(*(self._deliver(d, targets.get(d.webhook_id)) for d in deliveries))
        await self._record_and_claim(0)
        return len(deliveries)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- the queue -------------------------------------------------------------------------

    def _free_slots(self) -> int:
        return self._concurrency - len(self._in_flight)

    async def _record_and_claim(
        self, limit: int
    ) -> tuple[list[ClaimedDelivery], dict[int, Target]]:
        """One transaction: record every attempt finished since the last, claim up to `limit`.

        Two short transactions per delivery would be the simplest; under load this takes many
        outcomes and many claims in one.
        """
        finished, self._finished = self._finished, []
        now = self._clock.now()
        try:
            async with self._sessionmaker() as session, session.begin():
                disabled = [
                    await self._record(session, delivery, attempt, now=now)
                    for delivery, attempt in finished
                ]
                claimed = (
                    await service.claim_due(
                        session, now=now, lease_until=now + self._lease, limit=limit
                    )
                    if limit
                    else ([], {})
                )
        except BaseException:
            self._finished[:0] = finished
            raise
        _log_outcomes(finished, disabled)
        return claimed

    async def _record(
        self,
        session: AsyncSession,
        delivery: ClaimedDelivery,
        attempt: Attempt | None,
        *,
        now: datetime,
    ) -> str | None:
        if attempt is None:
            await service.fail_orphan(session, delivery)
            return None
        return await service.record_attempt(session, delivery, attempt, retry=self._retry, now=now)

    def _start(self, deliveries: list[ClaimedDelivery], targets: dict[int, Target]) -> int:
        for delivery in deliveries:
            task = asyncio.create_task(
                self._deliver(delivery, targets.get(delivery.webhook_id)),
                name=f"webhook-delivery-{delivery.id}",
            )
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return len(deliveries)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def _wait_for_slot_or_work(self) -> None:
        self._slot_freed.clear()
        await wait_any(
            self._stopping, self._slot_freed, timeout_s=POLL_INTERVAL_S, sleep=asyncio.sleep
        )

    async def _drain(self) -> None:
        """Attempts under way end within the timeout; then what they got is recorded."""
        if self._in_flight:
            log.info("waiting for %d webhook deliveries in flight", len(self._in_flight))
            _done, stuck = await asyncio.wait(
                self._in_flight, timeout=self._timeout_s + LEASE_MARGIN_S
            )
            for task in stuck:  # cannot happen with the POST's own timeout; the lease covers it
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        if self._finished:
            try:
                await self._record_and_claim(0)
            except TRANSIENT_ERRORS as error:
                self._outage_log.failed(
                    "drain",
                    error,
                    "recording %d webhook deliveries failed; they are delivered again after "
                    "their lease: %s",
                    len(self._finished),
                )

    # -- delivering ------------------------------------------------------------------------

    async def _deliver(self, delivery: ClaimedDelivery, target: Target | None) -> None:
        attempt = None if target is None else await self._post(delivery, target)
        self._finished.append((delivery, attempt))

    async def _post(self, delivery: ClaimedDelivery, target: Target) -> Attempt:
        body = delivery.payload.encode()
        timestamp = int(self._clock.now().timestamp())
        delivery_id = str(delivery.id)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(target.secret, timestamp, body),
            SIGNATURE_V2_HEADER: signature_v2(target.secret, timestamp, delivery_id, body),
            DELIVERY_HEADER: delivery_id,
        }
        parts = urlsplit(target.url)
        if "@" in parts.netloc:
            return NotDelivered("the URL holds credentials, which are not sent")
        try:
            if not self._allow_private:
                # An address in the URL is never resolved, so the resolver cannot check it.
                network.check_host(parts.hostname or "")
        except network.InsideAddress as error:
            return NotDelivered(str(error))
        try:
            async with self._client().post(
                target.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return Delivered()
                return NotDelivered(_describe_answer(response))
        except TimeoutError:
            return NotDelivered(f"no answer within {self._timeout_s:g} s")
        except aiohttp.ClientConnectorError as error:
            if isinstance(error.os_error, network.InsideAddress):
                return NotDelivered(str(error.os_error))
            return NotDelivered(f"{type(error).__name__}: {error}")
        except aiohttp.ClientError as error:
            return NotDelivered(f"{type(error).__name__}: {error}")
        except Exception as error:
            # Counted as a failed attempt, so it is retried and in the end given up on, not
            # left to its lease over and over.
            log.exception("unexpected error delivering webhook delivery %s", delivery.id)
            return NotDelivered(f"{type(error).__name__}: {error}")

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a ClientSession belongs to the running loop.
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                connector=aiohttp.TCPConnector(
                    ssl=self._ssl_context,
                    limit=self._concurrency,
                    resolver=None if self._allow_private else network.OutsideOnlyResolver(),
                ),
                # No HTTPS_PROXY: through a proxy, the address connected to is not the one
                # checked.
                trust_env=False,
            )
        return self._http


def _log_outcomes(
    finished: list[tuple[ClaimedDelivery, Attempt | None]], disabled: list[str | None]
) -> None:
    for (delivery, attempt), reason in zip(finished, disabled, strict=True):
        if isinstance(attempt, Delivered):
            instruments.WEBHOOK_DELIVERED.inc()
        if isinstance(attempt, NotDelivered):
            instruments.WEBHOOK_FAILED.inc()
            log.info(
                "webhook delivery %s (attempt %d) failed: %s",
                delivery.id,
                delivery.attempts,
                attempt.error,
            )
        if reason is not None:
            instruments.WEBHOOKS_DISABLED.inc()
            log.error("webhook %s disabled: %s", delivery.webhook_id, reason)


def _describe_answer(response: aiohttp.ClientResponse) -> str:
    """The status only: what the receiver wrote is its own, and may be anything."""
    if 300 <= response.status < 400:
        return f"HTTP {response.status}: redirects are not followed"
    return f"HTTP {response.status}"
