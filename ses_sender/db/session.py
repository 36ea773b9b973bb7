"""The request-scoped session: the edge owns the transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Commit when the endpoint returns, roll back when it raises."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session, session.begin():
        yield session


# scope="function": commit before the response is sent, so a failed commit is never a 200.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
