"""Alembic, driven from our code: `ses-sender migrate` and `serve` on SQLite use this."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from ses_sender.config import to_async_url

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


async def is_at_head(engine: AsyncEngine) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
    async with engine.connect() as connection:
        current = await connection.run_sync(
            lambda sync: set(MigrationContext.configure(sync).get_current_heads())
        )
    return current == heads
