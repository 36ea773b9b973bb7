"""The dependencies every feature's endpoints share: the clock, the request's time, the
database session whose transaction the request owns, and the API key check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.web.provided import Provided

CLOCK = Provided[Clock]("clock")
SESSIONMAKER = Provided[async_sessionmaker[AsyncSession]]("database sessions")

ClockDep = Annotated[Clock, Depends(CLOCK)]
# For work done after the response (a background task): it opens its own transaction.
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(SESSIONMAKER)]


async def _now(clock: ClockDep) -> datetime:
    return clock.now()


# The request's time, read once: everything one request writes carries the same.
NowDep = Annotated[datetime, Depends(_now)]


async def _session(sessionmaker: SessionmakerDep) -> AsyncIterator[AsyncSession]:
    """The edge owns the transaction: commit when the endpoint returns, roll back when it
    raises."""
    async with sessionmaker() as session, session.begin():
        yield session


# scope="function": committed before the response is sent, so a failed commit is never a 200.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
