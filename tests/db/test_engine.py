"""The driver options a PostgreSQL URL may carry reach asyncpg as the numbers it wants."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url

from ses_sender.config import Settings
from ses_sender.db.engine import create_engine
from tests.support.databases import postgresql_only

NUMERIC_OPTIONS = {
    "timeout": "5.5",
    "command_timeout": "30",
    "statement_cache_size": "0",
    "max_cached_statement_lifetime": "60",
    "max_cacheable_statement_size": "1024",
    "prepared_statement_cache_size": "10",
}


@postgresql_only
async def test_numeric_options_of_the_url_connect(database_url: str) -> None:
    url = make_url(database_url).update_query_dict(NUMERIC_OPTIONS)
    rendered = url.render_as_string(hide_password=False)
    settings = Settings(_env_file=None, DATABASE_URL=rendered)  # the settings take them
    engine = create_engine(settings.sqlalchemy_url)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()
