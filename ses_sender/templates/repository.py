"""SQL for stored templates: a row per template, a row per version, versions never updated."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.models import Template, TemplateVersion


async def create(session: AsyncSession, *, name: str, now: datetime) -> int:
    template_id = await session.scalar(
        insert(Template)
        .values(name=name, version=1, created_at=now, updated_at=now)
        .returning(Template.id)
    )
    assert isinstance(template_id, int)
    return template_id


async def add_version(
    session: AsyncSession,
    *,
    template_id: int,
    version: int,
    subject: str,
    content: str,
    text: str | None,
    now: datetime,
) -> None:
    await session.execute(
        insert(TemplateVersion).values(
            template_id=template_id,
            version=version,
            subject=subject,
            content=content,
            text=text,
            created_at=now,
        )
    )


async def lock_latest(session: AsyncSession, template_id: int) -> int | None:
    """The latest version number, with the template's row locked until the transaction ends
    (two edits at once make two versions, one after the other)."""
    return await session.scalar(
        select(Template.version).where(Template.id == template_id).with_for_update()
    )


async def set_latest(
    session: AsyncSession, template_id: int, *, name: str, version: int, now: datetime
) -> None:
    await session.execute(
        update(Template)
        .where(Template.id == template_id)
        .values(name=name, version=version, updated_at=now)
    )


async def find(
    session: AsyncSession, template_id: int, version: int | None = None
) -> tuple[Template, TemplateVersion] | None:
    """A template with one of its versions: `version`, or the latest."""
    wanted = TemplateVersion.version == (Template.version if version is None else version)
    row = (
        await session.execute(
            select(Template, TemplateVersion)
            .join(TemplateVersion, TemplateVersion.template_id == Template.id)
            .where(Template.id == template_id, wanted)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def page(session: AsyncSession, *, after: int | None, limit: int) -> Sequence[Template]:
    query = select(Template).order_by(Template.id).limit(limit)
    if after is not None:
        query = query.where(Template.id > after)
    return (await session.scalars(query)).all()


async def remove(session: AsyncSession, template_id: int) -> bool:
    await session.execute(delete(TemplateVersion).where(TemplateVersion.template_id == template_id))
    result = await session.execute(
        delete(Template).where(Template.id == template_id).returning(Template.id)
    )
    return result.scalar_one_or_none() is not None
