"""The account watch against the SES stub's GetAccount and a real database."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.composition import Runtime
from ses_sender.delivery.account import AccountWatch
from ses_sender.delivery.pacer import Pacer
from ses_sender.delivery.schedule import DatabaseSchedule
from ses_sender.sending.service import ACCOUNT, SendingPauses, active_pauses, pause_sending
from ses_sender.transports.ses import SesTransport
from tests.support.clock import FakeClock
from tests.support.outages import Outage
from tests.support.ses_stub import SesStub

EMAIL_RATE = 100.0


def make_pacer(runtime: Runtime) -> Pacer:
    return Pacer(EMAIL_RATE, schedule=DatabaseSchedule(runtime.sessionmaker))


def make_watch(
    runtime: Runtime, ses: SesTransport, *, pacer: Pacer | None = None, headroom: float = 0.0
) -> AccountWatch:
    return AccountWatch(
        source=ses,
        pacer=pacer or make_pacer(runtime),
        pauses=SendingPauses(),
        sessionmaker=runtime.sessionmaker,
        clock=runtime.clock,
        email_rate=EMAIL_RATE,
        headroom=headroom,
        interval_s=60.0,
    )


async def account_pause(runtime: Runtime) -> str | None:
    async with runtime.sessionmaker() as session:
        pauses = await active_pauses(session, now=runtime.clock.now())
    return next((pause.reason for pause in pauses if pause.name == ACCOUNT), None)


@pytest.mark.parametrize(
    ("max_send_rate", "headroom", "expected"),
    [(20.0, 0.0, 20.0), (20.0, 0.1, 18.0), (500.0, 0.0, EMAIL_RATE), (500.0, 0.9, 50.0)],
)
async def test_the_rate_is_capped_by_the_accounts_max_send_rate(
    runtime: Runtime,
    ses: SesTransport,
    ses_stub: SesStub,
    max_send_rate: float,
    headroom: float,
    expected: float,
) -> None:
    ses_stub.max_send_rate = max_send_rate
    pacer = make_pacer(runtime)

    await make_watch(runtime, ses, pacer=pacer, headroom=headroom).check()

    assert pacer.target == pytest.approx(expected)


async def test_sending_disabled_pauses_until_ses_enables_it_again(
    runtime: Runtime, ses: SesTransport, ses_stub: SesStub, clock: FakeClock
) -> None:
    watch = make_watch(runtime, ses)
    ses_stub.sending_enabled = False

    await watch.check()
    clock.advance(3_600)  # no end of its own: it lasts as long as SES says so
    assert "sending disabled" in (await account_pause(runtime) or "")

    ses_stub.sending_enabled = True
    await watch.check()
    assert await account_pause(runtime) is None


async def test_a_used_daily_quota_pauses_and_a_freed_one_resumes(
    runtime: Runtime, ses: SesTransport, ses_stub: SesStub
) -> None:
    watch = make_watch(runtime, ses)
    ses_stub.sent_recipients = 50_000
    ses_stub.max_24_hour_send = 50_000

    await watch.check()
    assert await account_pause(runtime) == (
        "the daily sending quota is used: 50000 of 50000 in the last 24 hours"
    )

    ses_stub.sent_recipients = 49_000  # the rolling window moved on
    await watch.check()
    assert await account_pause(runtime) is None


async def test_an_account_pause_from_a_send_error_is_lifted_when_ses_would_send(
    runtime: Runtime, ses: SesTransport, clock: FakeClock
) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        now = clock.now()
        reason = "SendingPausedException: Sending is paused for this account."
        await pause_sending(session, ACCOUNT, reason, now=now, until=now + timedelta(seconds=60))

    await make_watch(runtime, ses).check()

    assert await account_pause(runtime) is None


async def test_an_unreadable_account_changes_nothing(
    runtime: Runtime, ses_stub: SesStub, ses: SesTransport, caplog: pytest.LogCaptureFixture
) -> None:
    await ses_stub.stop()  # nothing listens on its port any more
    pacer = make_pacer(runtime)
    with caplog.at_level(logging.WARNING):
        await make_watch(runtime, ses, pacer=pacer).check()

    assert pacer.target == EMAIL_RATE
    assert await account_pause(runtime) is None
    assert "could not read the SES account's limits" in caplog.text


def account_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "ses_sender.delivery.account"]


async def test_a_database_outage_is_one_line_a_minute_without_a_traceback(
    outage: Outage, ses: SesTransport, ses_stub: SesStub, caplog: pytest.LogCaptureFixture
) -> None:
    """On SQLite the disk is full, on PostgreSQL the server is gone: the pause cannot be
    written, and saying so at every check, with a traceback, would flood the log."""
    watch = make_watch(outage.runtime, ses)
    ses_stub.sending_enabled = False
    await outage.start()
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                await watch.check()
    finally:
        await outage.end()

    [line] = account_lines(caplog)
    assert line.levelno == logging.WARNING
    assert line.exc_info is None
    assert line.getMessage().startswith(
        "applying the SES account's state failed, trying again later: "
    )


class FaultyPauses(SendingPauses):
    async def pause_for_account(
        self, session: AsyncSession, reason: str, *, now: datetime, until: datetime | None
    ) -> None:
        # A statement at fault, not the database: the same row twice breaks the primary key.
        for _ in range(2):
            await session.execute(
                text("INSERT INTO sending_pauses (name, reason, paused_at) VALUES ('x', '', :at)"),
                {"at": now},
            )


async def test_a_fault_that_is_no_outage_keeps_its_traceback_each_time(
    runtime: Runtime, ses: SesTransport, ses_stub: SesStub, caplog: pytest.LogCaptureFixture
) -> None:
    watch = AccountWatch(
        source=ses,
        pacer=make_pacer(runtime),
        pauses=FaultyPauses(),
        sessionmaker=runtime.sessionmaker,
        clock=runtime.clock,
        email_rate=EMAIL_RATE,
        headroom=0.0,
        interval_s=60.0,
    )
    ses_stub.sending_enabled = False

    with caplog.at_level(logging.WARNING):
        await watch.check()
        await watch.check()

    lines = account_lines(caplog)
    assert [line.levelno for line in lines] == [logging.ERROR, logging.ERROR]
    assert all(line.exc_info is not None for line in lines)
