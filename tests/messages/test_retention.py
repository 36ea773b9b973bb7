"""Idempotency keys are forgotten after their TTL, a batch per housekeeping sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ses_sender.composition import Runtime
from ses_sender.messages import retention
from ses_sender.messages.retention import ExpireIdempotencyKeys
from ses_sender.models import IdempotencyKey

TTL = timedelta(hours=24)


async def add_key(runtime: Runtime, key: str, *, age: timedelta, status_code: int = 200) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        session.add(
            IdempotencyKey(
                key=key,
                request_hash="0" * 64,
                status_code=status_code,
                response="{}",
                created_at=runtime.clock.now() - age,
            )
        )


async def keys(runtime: Runtime) -> set[str]:
    async with runtime.sessionmaker() as session:
        return set(await session.scalars(select(IdempotencyKey.key)))


async def expire_once(runtime: Runtime) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await ExpireIdempotencyKeys(TTL).run(session, now=runtime.clock.now())


async def test_answered_keys_older_than_the_ttl_are_forgotten(runtime: Runtime) -> None:
    await add_key(runtime, "old", age=TTL + timedelta(seconds=1))
    await add_key(runtime, "recent", age=TTL - timedelta(seconds=1))
    await add_key(runtime, "old but unanswered", age=TTL * 2, status_code=0)

    await expire_once(runtime)

    assert await keys(runtime) == {"recent", "old but unanswered"}


async def test_one_sweep_deletes_at_most_a_batch(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(5):
        await add_key(runtime, f"k{index}", age=TTL * 2)
    monkeypatch.setattr(retention, "BATCH", 2)

    await expire_once(runtime)

    assert len(await keys(runtime)) == 3
