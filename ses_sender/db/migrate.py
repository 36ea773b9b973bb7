"""Alembic, driven from our code: `ses-sender migrate` and `serve` on SQLite use this."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import NoReturn

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ses_sender.config import SettingsError, to_async_url
from ses_sender.db.engine import create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would read a '%' in a password as a placeholder.
    config.set_main_option("sqlalchemy.url", to_async_url(url).replace("%", "%%"))
    return config


def upgrade_to_head(url: str) -> None:
    """Idempotent: a database already at head is left as it is."""
    command.upgrade(alembic_config(url), "head")


async def upgrade_to_head_async(url: str) -> None:
    # env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(upgrade_to_head, url)


async def migrate_database(url: str) -> None:
    """`ses-sender migrate`: a database that does not answer is said in one line
    (`DatabaseUnreachable`, `SettingsError`) before the migrations start."""
    engine = create_engine(url)
    try:
        async with engine.connect():
            pass
    except Exception as error:
        _raise_connect_failure(error)
    finally:
        await engine.dispose()
    await upgrade_to_head_async(url)


async def is_at_head(engine: AsyncEngine) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
    async with engine.connect() as connection:
        current = await connection.run_sync(
            lambda sync: set(MigrationContext.configure(sync).get_current_heads())
        )
    return current == heads


class SchemaOutOfDate(Exception):
    """The database is not at the latest migration, and this command does not migrate it."""


class DatabaseUnreachable(Exception):
    """The database did not answer; the message says why in one line."""


async def ensure_schema(url: str, *, migrate_sqlite: bool) -> None:
    """Bring an SQLite database to head when `migrate_sqlite` (one machine, one process: nothing
    else could be running an older version); otherwise refuse one that is not at head."""
    if migrate_sqlite and url.startswith("sqlite"):
        await upgrade_to_head_async(url)
        return
    engine = create_engine(url)
    try:
        at_head = await is_at_head(engine)
    except Exception as error:
        _raise_connect_failure(error)
    finally:
        await engine.dispose()
    if not at_head:
        raise SchemaOutOfDate("the database schema is not up to date: run `ses-sender migrate`")


def _raise_connect_failure(error: Exception) -> NoReturn:
    """Connecting failed: the database did not answer (or refused us), or the driver refused
    DATABASE_URL's options; anything else is raised as it is."""
    if isinstance(error, OSError | DBAPIError):
        reason = str(getattr(error, "orig", None) or error) or type(error).__name__
        raise DatabaseUnreachable(f"the database is unreachable: {reason}") from error
    if isinstance(error, ValueError | TypeError):
        # asyncpg's message quotes the option's value, which may be a secret.
        raise SettingsError(
            "DATABASE_URL: the database driver refuses the value of one of its options"
        ) from error
    raise error
