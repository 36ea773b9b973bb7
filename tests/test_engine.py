"""The database engine as the process builds it."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ses_sender.config import Settings
from ses_sender.db.engine import create_engine


async def test_a_failed_statement_says_nothing_of_its_values(settings: Settings) -> None:
    """What the error shows is logged and sent to Sentry: never addresses or contents."""
    engine = create_engine(settings.sqlalchemy_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as failed:
                await connection.execute(
                    text("SELECT * FROM no_such_table WHERE email = :email"),
                    {"email": "jane@example.net"},
                )
    finally:
        await engine.dispose()

    assert "no_such_table" in str(failed.value)
    assert "jane@example.net" not in str(failed.value)
