"""The sending-pause service (pause, list the active pauses, resume), on both databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from ses_sender.models import SendingPause
from ses_sender.runtime import Runtime
from ses_sender.sending.service import active_pauses, pause_sending, resume_sending
from tests.clock import FakeClock


async def active_names(runtime: Runtime, clock: FakeClock) -> list[str]:
    async with runtime.sessionmaker() as session:
        return [pause.name for pause in await active_pauses(session, now=clock.now())]


async def test_pause_until_resumed(runtime: Runtime, clock: FakeClock) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await pause_sending(session, "guardrail", "too many bounces", now=clock.now())
    clock.advance(86_400 * 30)

    assert await active_names(runtime, clock) == ["guardrail"]
    async with runtime.sessionmaker() as session, session.begin():
        assert await resume_sending(session, "guardrail") == ["guardrail"]
        assert await resume_sending(session, "guardrail") == []
    assert await active_names(runtime, clock) == []


async def test_a_timed_pause_ends_by_itself(runtime: Runtime, clock: FakeClock) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        until = clock.now() + timedelta(minutes=1)
        await pause_sending(session, "account", "SES paused", now=clock.now(), until=until)

    assert await active_names(runtime, clock) == ["account"]
    clock.advance(60)
    assert await active_names(runtime, clock) == []


async def test_pausing_again_replaces_the_reason(runtime: Runtime, clock: FakeClock) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await pause_sending(session, "guardrail", "first", now=clock.now())
    clock.advance(5)
    async with runtime.sessionmaker() as session, session.begin():
        await pause_sending(session, "guardrail", "second", now=clock.now())

    async with runtime.sessionmaker() as session:
        (pause,) = (await session.scalars(select(SendingPause))).all()
    assert (pause.reason, pause.paused_at, pause.until) == ("second", clock.now(), None)


async def test_resume_without_a_name_resumes_all(runtime: Runtime, clock: FakeClock) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await pause_sending(session, "b", "one", now=clock.now())
        await pause_sending(session, "a", "two", now=clock.now())

    async with runtime.sessionmaker() as session, session.begin():
        assert await resume_sending(session) == ["a", "b"]
    assert await active_names(runtime, clock) == []
