"""Database outages for in-process workers: a sessionmaker whose database goes away and comes
back when a test says so."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.db.engine import create_engine, create_sessionmaker

# Nothing listens on port 1: every connection is refused, as from a database that is down.
UNREACHABLE_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/unreachable"


class SwitchableSessionmaker:
    """Sessions on the working database, or, while `down`, on one that refuses connections."""

    def __init__(self, working: async_sessionmaker[AsyncSession]) -> None:
        self._working = working
        self._engine = create_engine(UNREACHABLE_URL)
        self._unreachable = create_sessionmaker(self._engine)
        self.down = False

    def __call__(self) -> AsyncSession:
        return (self._unreachable if self.down else self._working)()

    async def close(self) -> None:
        await self._engine.dispose()
