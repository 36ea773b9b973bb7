"""Stored templates: created, listed, read, edited into a new version, deleted.

A message names a template (and a version, or the latest) and gets a copy of that version's
subject, content and text in its own content row: editing or deleting the template afterwards
never changes an email already queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jinja2 import TemplateError
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.cursor import cursor_row_id, decode_cursor, encode_cursor
from ses_sender.errors import InvalidInput, NotFound, PayloadTooLarge
from ses_sender.models import Template, TemplateVersion
from ses_sender.templates import repository
from ses_sender.templates.schemas import (
    MAX_NAME_LENGTH,
    TemplateCreatedOut,
    TemplateIn,
    TemplateOut,
    TemplatePageOut,
    TemplateSummaryOut,
)
from ses_sender.templating import (
    MAX_RENDERED_PART_CHARS,
    MAX_RENDERED_SUBJECT_CHARS,
    RenderWorkExceeded,
    TemplateKind,
    check_work_without_data,
    describe_template_error,
    template_variables,
)


@dataclass(frozen=True, slots=True)
class TemplateParts:
    """One version of a stored template, as a message uses it."""

    template_id: int
    version: int
    subject: str
    content: str
    text: str | None


async def create_template(
    session: AsyncSession, body: TemplateIn, *, now: datetime
) -> TemplateCreatedOut:
    name, subject, content, text = _checked(body)
    template_id = await repository.create(session, name=name, now=now)
    await repository.add_version(
        session,
        template_id=template_id,
        version=1,
        subject=subject,
        content=content,
        text=text,
        now=now,
    )
    return TemplateCreatedOut(id=template_id, version=1)


async def update_template(
    session: AsyncSession, template_id: int, body: TemplateIn, *, now: datetime
) -> TemplateCreatedOut:
    name, subject, content, text = _checked(body)
    latest = await repository.lock_latest(session, template_id)
    if latest is None:
        raise NotFound(f"template {template_id} not found")
    version = latest + 1
    await repository.add_version(
        session,
        template_id=template_id,
        version=version,
        subject=subject,
        content=content,
        text=text,
        now=now,
    )
    await repository.set_latest(session, template_id, name=name, version=version, now=now)
    return TemplateCreatedOut(id=template_id, version=version)


async def get_template(
    session: AsyncSession, template_id: int, version: int | None = None
) -> TemplateOut:
    found = await repository.find(session, template_id, version)
    if found is None:
        raise NotFound(_not_found(template_id, version))
    template, stored = found
    return _out(template, stored)


async def list_templates(
    session: AsyncSession, *, cursor: str | None, limit: int
) -> TemplatePageOut:
    after = None if cursor is None else _cursor_id(cursor)
    found = await repository.page(session, after=after, limit=limit + 1)
    shown = found[:limit]
    return TemplatePageOut(
        templates=[
            TemplateSummaryOut(
                id=row.id, name=row.name, version=row.version, updated_at=row.updated_at
            )
            for row in shown
        ],
        next_cursor=encode_cursor(str(shown[-1].id)) if len(found) > limit else None,
    )


async def delete_template(session: AsyncSession, template_id: int) -> None:
    if not await repository.remove(session, template_id):
        raise NotFound(f"template {template_id} not found")


async def template_parts(
    session: AsyncSession, template_id: int, version: int | None, where: str
) -> TemplateParts:
    """The version a message names; a 400 naming the message's field when there is none."""
    found = await repository.find(session, template_id, version)
    if found is None:
        field = "templateId" if version is None else "templateVersion"
        raise InvalidInput(f"{where}.{field}: {_not_found(template_id, version)}")
    _, stored = found
    return TemplateParts(
        template_id=template_id,
        version=stored.version,
        subject=stored.subject,
        content=stored.content,
        text=stored.text,
    )


def _checked(body: TemplateIn) -> tuple[str, str, str, str | None]:
    name = body.name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidInput(f"name: 1 to {MAX_NAME_LENGTH} printable characters")
    subject = body.subject.strip()
    if not subject or "\r" in subject or "\n" in subject:
        raise InvalidInput("subject: one line, not empty")
    if len(subject) > MAX_RENDERED_SUBJECT_CHARS:
        raise InvalidInput(f"subject: at most {MAX_RENDERED_SUBJECT_CHARS} characters")
    content = body.content.strip()
    if not content:
        raise InvalidInput("content: content cannot be empty")
    parts = {
        TemplateKind.SUBJECT: subject,
        TemplateKind.HTML: content,
        TemplateKind.TEXT: body.text,
    }
    for kind, source in parts.items():
        if source is None:
            continue
        if len(source.encode()) > MAX_RENDERED_PART_CHARS:
            raise PayloadTooLarge(f"{kind.value}: at most {MAX_RENDERED_PART_CHARS} bytes")
        try:
            template_variables(source, kind)
            check_work_without_data(source)
        except TemplateError as error:
            raise InvalidInput(f"{kind.value}: {describe_template_error(error)}") from None
        except RenderWorkExceeded as error:
            raise InvalidInput(f"{kind.value}: {error}") from None
    return name, subject, content, body.text


def _out(template: Template, stored: TemplateVersion) -> TemplateOut:
    return TemplateOut(
        id=template.id,
        name=template.name,
        version=stored.version,
        subject=stored.subject,
        content=stored.content,
        text=stored.text,
        created_at=stored.created_at,
        updated_at=template.updated_at,
    )


def _not_found(template_id: int, version: int | None) -> str:
    if version is None:
        return f"template {template_id} not found"
    return f"template {template_id} has no version {version}"


def _cursor_id(cursor: str) -> int:
    (row_id,) = decode_cursor(cursor, parts=1)
    return cursor_row_id(row_id)
