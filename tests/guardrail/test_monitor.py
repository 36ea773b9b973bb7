"""The reputation guardrail, checked against rows in a real database (SQLite and PostgreSQL).

Rows are written as the worker and SNS ingestion leave them; `test_sns.py` trips it with real
signed bounce notifications.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from ses_sender.composition import Runtime
from ses_sender.guardrail.monitor import GuardrailMonitor
from ses_sender.guardrail.service import PAUSE_NAME, Limits
from ses_sender.models import SendingPause
from ses_sender.sending.service import active_pauses, pause_sending, resume_sending
from ses_sender.tasks import Periodic
from tests.support.clock import FakeClock
from tests.support.polling import wait_until, while_running
from tests.support.rows import add_sends
from tests.support.spies import spy

LIMITS = Limits(bounce_rate=0.05, complaint_rate=0.001, min_sends=200)
HARD = "Permanent/General"

MonitorFactory = Callable[[], GuardrailMonitor]


@pytest.fixture
def make_monitor(runtime: Runtime, clock: FakeClock) -> MonitorFactory:
    """A new monitor each call: a new process, remembering nothing."""

    def build() -> GuardrailMonitor:
        return GuardrailMonitor(sessionmaker=runtime.sessionmaker, limits=LIMITS, clock=clock)

    return build


@pytest.fixture
def monitor(make_monitor: MonitorFactory) -> GuardrailMonitor:
    return make_monitor()


async def paused(runtime: Runtime, clock: FakeClock) -> list[str]:
    async with runtime.sessionmaker() as session:
        return [p.reason for p in await active_pauses(session, now=clock.now())]


async def resume(runtime: Runtime) -> None:
    """What `POST /v1/sending/resume` does."""
    async with runtime.sessionmaker() as session, session.begin():
        assert await resume_sending(session, PAUSE_NAME) == [PAUSE_NAME]


class TestTrip:
    async def test_over_the_bounce_rate_pauses_all_sending_and_says_why(
        self,
        runtime: Runtime,
        clock: FakeClock,
        monitor: GuardrailMonitor,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        sent_at = clock.now() - timedelta(hours=2)
        await add_sends(runtime, 189, sent_at=sent_at)
        await add_sends(runtime, 11, sent_at=sent_at, bounce_type=HARD)

        with caplog.at_level(logging.ERROR):
            reason = await monitor.check()

        since = (clock.now() - timedelta(hours=24)).strftime("%Y-%m-%d %H:%M:%S")
        assert reason == (
            f"bounce rate 5.50% (11 hard bounces of 200 emails sent since {since} UTC) "
            "is over GUARDRAIL_BOUNCE_RATE 5.00%"
        )
        assert await paused(runtime, clock) == [reason]
        (record,) = caplog.records
        assert record.levelno == logging.ERROR  # what Sentry's logging integration reports
        assert record.getMessage() == f"sending paused (guardrail): {reason}"

    async def test_over_the_complaint_rate(
        self, runtime: Runtime, clock: FakeClock, monitor: GuardrailMonitor
    ) -> None:
        await add_sends(runtime, 998, sent_at=clock.now())
        await add_sends(runtime, 2, sent_at=clock.now(), complained=True)

        reason = await monitor.check()

        assert reason is not None
        assert reason.startswith("complaint rate 0.20% (2 complaints of 1000 emails sent since")
        assert reason.endswith("is over GUARDRAIL_COMPLAINT_RATE 0.10%")

    async def test_both_rates_over_names_both(
        self, runtime: Runtime, clock: FakeClock, monitor: GuardrailMonitor
    ) -> None:
        await add_sends(runtime, 150, sent_at=clock.now())
        await add_sends(runtime, 50, sent_at=clock.now(), bounce_type=HARD, complained=True)

        reason = await monitor.check()

        assert reason is not None
        assert "bounce rate 25.00%" in reason
        assert "; complaint rate 25.00%" in reason

    async def test_nothing_trips_below_the_minimum_number_of_sends(
        self, runtime: Runtime, clock: FakeClock, monitor: GuardrailMonitor
    ) -> None:
        await add_sends(runtime, 199, sent_at=clock.now(), bounce_type=HARD, complained=True)

        assert await monitor.check() is None
        assert await paused(runtime, clock) == []

        await add_sends(runtime, 1, sent_at=clock.now(), bounce_type=HARD)
        assert await monitor.check() is not None

    async def test_at_the_limit_is_not_over_it(
        self, runtime: Runtime, clock: FakeClock, monitor: GuardrailMonitor
    ) -> None:
        await add_sends(runtime, 190, sent_at=clock.now())
        await add_sends(runtime, 10, sent_at=clock.now(), bounce_type=HARD)  # exactly 5 %

        assert await monitor.check() is None

    @pytest.mark.parametrize(
        "bounce_type",
        [
            "Transient/General",
            "Transient/MailboxFull",
            "Undetermined/Undetermined",
            "Permanent/OnAccountSuppressionList",  # SES never tried: not in SES's rate either
        ],
    )
    async def test_bounces_that_do_not_count(
        self, runtime: Runtime, clock: FakeClock, monitor: GuardrailMonitor, bounce_type: str
    ) -> None:
        await add_sends(runtime, 100, sent_at=clock.now())
        await add_sends(runtime, 100, sent_at=clock.now(), bounce_type=bounce_type)

        assert await monitor.check() is None

    @pytest.mark.parametrize(
        "bounce_type", ["Permanent", "Permanent/NoEmail", "Permanent/Suppressed"]
    )
    async def test_every_other_permanent_bounce_counts(
        self, runtime: Runtime, clock: FakeClock, monitor: GuardrailMonitor, bounce_type: str
    ) -> None:
        await add_sends(runtime, 189, sent_at=clock.now())
        await add_sends(runtime, 11, sent_at=clock.now(), bounce_type=bounce_type)

        assert await monitor.check() is not None

    async def test_only_the_last_day_counts(
        self, runtime: Runtime, clock: FakeClock, monitor: GuardrailMonitor
    ) -> None:
        day_ago = clock.now() - timedelta(hours=24, seconds=1)
        await add_sends(runtime, 500, sent_at=day_ago, bounce_type=HARD, complained=True)
        await add_sends(runtime, 200, sent_at=clock.now())

        assert await monitor.check() is None

        clock.advance(-2)  # the same bad sends, one second inside the window
        assert await monitor.check() is not None

    async def test_a_paused_guardrail_is_not_counted_again(
        self,
        runtime: Runtime,
        clock: FakeClock,
        monitor: GuardrailMonitor,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        await add_sends(runtime, 200, sent_at=clock.now(), bounce_type=HARD)
        first = await monitor.check()
        clock.advance(60)
        caplog.clear()

        with caplog.at_level(logging.ERROR, logger="ses_sender.guardrail"):
            assert await monitor.check() is None

        assert caplog.records == []
        async with runtime.sessionmaker() as session:
            (pause,) = (await session.scalars(select(SendingPause))).all()
        assert (pause.reason, pause.paused_at) == (first, clock.now() - timedelta(seconds=60))

    async def test_other_pauses_do_not_stop_it(
        self, runtime: Runtime, clock: FakeClock, monitor: GuardrailMonitor
    ) -> None:
        async with runtime.sessionmaker() as session, session.begin():
            await pause_sending(session, "account", "SES paused the account", now=clock.now())
        await add_sends(runtime, 200, sent_at=clock.now(), bounce_type=HARD)

        assert await monitor.check() is not None
        assert len(await paused(runtime, clock)) == 2


class TestResume:
    async def test_after_a_resume_it_counts_only_emails_sent_since(
        self, runtime: Runtime, clock: FakeClock, monitor: GuardrailMonitor
    ) -> None:
        await add_sends(runtime, 200, sent_at=clock.now(), bounce_type=HARD)
        assert await monitor.check() is not None
        clock.advance(600)
        await resume(runtime)

        for _ in range(3):  # the old numbers never trip it again
            assert await monitor.check() is None
            clock.advance(15)
        assert await paused(runtime, clock) == []

        # Good mail since the resume keeps it resumed ...
        await add_sends(runtime, 300, sent_at=clock.now())
        assert await monitor.check() is None
        # ... bad mail since the resume trips it again, once there is enough to judge.
        await add_sends(runtime, 50, sent_at=clock.now(), bounce_type=HARD)
        reason = await monitor.check()
        assert reason is not None
        assert reason.startswith("bounce rate 14.29% (50 hard bounces of 350 emails sent since")

    async def test_a_restart_after_a_resume_still_counts_from_the_resume(
        self,
        runtime: Runtime,
        clock: FakeClock,
        make_monitor: MonitorFactory,
    ) -> None:
        await add_sends(runtime, 200, sent_at=clock.now(), bounce_type=HARD)
        assert await make_monitor().check() is not None
        running = make_monitor()
        assert await running.check() is None  # sees the pause
        await resume(runtime)
        clock.advance(15)
        assert await running.check() is None  # sees the resume, and keeps when

        restarted = make_monitor()
        assert await restarted.check() is None
        assert await paused(runtime, clock) == []

    async def test_a_resume_of_every_pause_does_not_make_it_forget(
        self, runtime: Runtime, clock: FakeClock, make_monitor: MonitorFactory
    ) -> None:
        await add_sends(runtime, 200, sent_at=clock.now(), bounce_type=HARD)
        running = make_monitor()
        assert await running.check() is not None
        await resume(runtime)
        assert await running.check() is None
        async with runtime.sessionmaker() as session, session.begin():
            await resume_sending(session)  # "resume everything", its record of the resume too

        clock.advance(15)
        assert await running.check() is None  # it remembers, and writes the record again
        assert await make_monitor().check() is None

    async def test_a_resume_no_running_check_saw_counts_the_whole_day_again(
        self, runtime: Runtime, clock: FakeClock, make_monitor: MonitorFactory
    ) -> None:
        """The documented limit: every process was down from the trip through the resume."""
        await add_sends(runtime, 200, sent_at=clock.now(), bounce_type=HARD)
        assert await make_monitor().check() is not None
        await resume(runtime)

        assert await make_monitor().check() is not None


class TestPeriodically:
    async def test_checks_on_its_interval_until_stopped(
        self,
        runtime: Runtime,
        clock: FakeClock,
        monitor: GuardrailMonitor,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        checks = spy(monkeypatch, monitor, "check")
        periodic = Periodic("guardrail check", monitor.check, 0.05)
        loop = asyncio.create_task(periodic.run())
        try:

            async def a_few_checks() -> bool:
                return len(checks.returned) >= 3

            await wait_until(while_running(loop, a_few_checks), "three checks")
            assert checks.returned[:3] == [None] * 3  # nothing to find
            assert await paused(runtime, clock) == []
            await add_sends(runtime, 200, sent_at=clock.now(), bounce_type=HARD)
            await wait_until(while_running(loop, lambda: _paused(runtime, clock)), "the pause")
        finally:
            periodic.stop()
            await loop


async def _paused(runtime: Runtime, clock: FakeClock) -> bool:
    return bool(await paused(runtime, clock))
