"""Pausing and resuming all sending, on both databases."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from ses_sender.composition import Runtime
from ses_sender.sending.service import (
    active_pauses,
    pause_sending,
    resume_sending,
    sending_state,
)
from tests.support.clock import FakeClock


async def test_a_pause_is_in_force_until_resumed(runtime: Runtime, clock: FakeClock) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await pause_sending(session, "guardrail", "bounce rate 6.1% > 5%", now=clock.now())

    clock.advance(86_400)
    async with runtime.sessionmaker() as session:
        [pause] = await active_pauses(session, now=clock.now())
        state = await sending_state(session, now=clock.now())

    assert (pause.name, pause.reason, pause.until) == ("guardrail", "bounce rate 6.1% > 5%", None)
    assert pause.paused_at == clock.now() - timedelta(days=1)
    assert state.paused
    assert state.reasons == ["guardrail: bounce rate 6.1% > 5%"]


async def test_pausing_again_updates_the_reason_and_logs_only_the_start(
    runtime: Runtime, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    started = clock.now()
    with caplog.at_level(logging.ERROR, logger="ses_sender.sending"):
        for reason in ("SendingPausedException: paused", "daily quota used"):
            async with runtime.sessionmaker() as session, session.begin():
                await pause_sending(session, "account", reason, now=clock.now())
            clock.advance(5)

    async with runtime.sessionmaker() as session:
        [pause] = await active_pauses(session, now=clock.now())

    assert (pause.reason, pause.paused_at) == ("daily quota used", started)
    assert [record.getMessage() for record in caplog.records] == [
        "sending paused (account): SendingPausedException: paused"
    ]


async def test_a_pause_with_an_end_lapses_and_can_begin_again(
    runtime: Runtime, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    until = clock.now() + timedelta(minutes=1)
    with caplog.at_level(logging.ERROR, logger="ses_sender.sending"):
        async with runtime.sessionmaker() as session, session.begin():
            await pause_sending(session, "account", "auth failed", now=clock.now(), until=until)
        clock.advance(30)
        async with runtime.sessionmaker() as session:
            assert len(await active_pauses(session, now=clock.now())) == 1
        clock.advance(30)
        async with runtime.sessionmaker() as session:
            assert await active_pauses(session, now=clock.now()) == []
        async with runtime.sessionmaker() as session, session.begin():
            await pause_sending(session, "account", "auth failed", now=clock.now(), until=None)
        async with runtime.sessionmaker() as session:
            [pause] = await active_pauses(session, now=clock.now())

    assert pause.paused_at == clock.now()
    assert len(caplog.records) == 2  # two pauses, each logged when it began


async def test_resume_lifts_one_pause_or_all_and_says_which(
    runtime: Runtime, clock: FakeClock
) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        for name in ("guardrail", "account"):
            await pause_sending(session, name, "why", now=clock.now())

    async with runtime.sessionmaker() as session, session.begin():
        assert await resume_sending(session, "guardrail") == ["guardrail"]
        assert await resume_sending(session, "guardrail") == []
    async with runtime.sessionmaker() as session:
        assert [p.name for p in await active_pauses(session, now=clock.now())] == ["account"]
    async with runtime.sessionmaker() as session, session.begin():
        await pause_sending(session, "guardrail", "why", now=clock.now())
        assert await resume_sending(session) == ["account", "guardrail"]
        assert await resume_sending(session) == []
