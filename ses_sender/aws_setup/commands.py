"""The `setup-aws` and `doctor` commands: what they print and the exit code they return.

Exit codes: 0 done (or nothing to do), 1 AWS refused or a check failed, 2 a setting or argument
is missing or wrong (as for every other command).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ses_sender.aws_setup.checks import Status, run_checks
from ses_sender.aws_setup.plan import EVENTS_PATH, Change, Current, Desired, plan_changes
from ses_sender.aws_setup.resources import (
    AWS_ERRORS,
    AwsClients,
    apply_changes,
    describe_aws_error,
    open_clients,
    read_current,
)
from ses_sender.config import Settings
from ses_sender.db.engine import create_engine, create_sessionmaker, sqlite_file_missing
from ses_sender.db.migrate import DatabaseUnreachable, SchemaOutOfDate, ensure_schema, is_at_head
from ses_sender.ses_events import service as ses_events_service

NO_CREDENTIALS = (
    "no AWS credentials found (environment, shared files, SSO or container role; on an EC2 "
    "instance role set EMAIL_TRANSPORT=ses)"
)
CredentialsSource = Callable[[], str | None]
# Their INFO lines (endpoint resolution, the migration context) would drown the report.
_CHATTY_LOGGERS = ("botocore", "aiobotocore", "alembic")


async def setup_aws(
    settings: Settings,
    *,
    endpoint: str | None,
    dry_run: bool,
    credentials_source: CredentialsSource,
) -> int:
    """Create or update the configuration set, its SNS topic and our endpoint's subscription."""
    _quiet_libraries()
    if not settings.ses_config_set:
        return _refuse("SES_CONFIG_SET: required by setup-aws (the configuration set to set up)")
    endpoint = endpoint or f"{settings.server_host}{EVENTS_PATH}"
    problem = endpoint_problem(endpoint)
    if problem is not None:
        return _refuse(f"--endpoint: {problem} (got {endpoint!r})")
    if await asyncio.to_thread(credentials_source) is None:
        return _refuse(NO_CREDENTIALS)

    try:
        trust = await _TopicTrust.open(settings, migrate=not dry_run)
    except SchemaOutOfDate as error:
        return _refuse(str(error))
    except DatabaseUnreachable as error:
        return _fail(f"setup-aws: {error}")
    desired = Desired(settings.ses_config_set, endpoint)
    print(
        f"Configuration set {desired.configuration_set} in {settings.aws_region}, "
        f"SES events to {endpoint}"
    )
    try:
        async with open_clients(settings) as clients:
            return await _plan_and_apply(clients, trust, desired, dry_run=dry_run)
    except AWS_ERRORS as error:
        return _fail(f"setup-aws: {describe_aws_error(error)}")
    finally:
        await trust.close()


class _TopicTrust:
    """The topics this service trusts, in its database (the one DATABASE_URL names)."""

    def __init__(self, engine: AsyncEngine | None) -> None:
        self._engine = engine

    @classmethod
    async def open(cls, settings: Settings, *, migrate: bool) -> _TopicTrust:
        """`migrate`: bring an SQLite database to head first. Without it, a database that is not
        at head is read as trusting nothing (a dry run changes nothing, not even the schema)."""
        url = settings.sqlalchemy_url
        if migrate:
            await ensure_schema(url, migrate_sqlite=True)
        elif sqlite_file_missing(url):
            return cls(None)
        engine = create_engine(url)
        if not migrate and not await _at_head(engine):
            await engine.dispose()
            return cls(None)
        return cls(engine)

    async def trusts(self, topic_arn: str) -> bool:
        if self._engine is None:
            return False
        async with create_sessionmaker(self._engine)() as session:
            return topic_arn in await ses_events_service.trusted_topics(session)

    async def record(self, topic_arn: str) -> None:
        assert self._engine is not None  # opened with migrate=True: not a dry run
        async with create_sessionmaker(self._engine)() as session, session.begin():
            await ses_events_service.trust_topic(session, topic_arn, now=datetime.now(UTC))

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()


async def _at_head(engine: AsyncEngine) -> bool:
    try:
        return await is_at_head(engine)
    except (OSError, DBAPIError):  # unreachable: a dry run reads it as trusting nothing
        return False


async def _read_current(clients: AwsClients, trust: _TopicTrust, desired: Desired) -> Current:
    current = await read_current(clients, desired)
    if current.topic is None:
        return current
    return replace(current, topic_trusted=await trust.trusts(current.topic.arn))


async def _plan_and_apply(
    clients: AwsClients, trust: _TopicTrust, desired: Desired, *, dry_run: bool
) -> int:
    current = await _read_current(clients, trust, desired)
    changes = plan_changes(desired, current)
    if not changes:
        print("Plan: no changes, everything is in place.")
        _print_notes(current)
        return 0
    print(f"Plan: {len(changes)} change{'s' if len(changes) > 1 else ''}")
    for change in changes:
        print(f"  + {change.describe()}")
    if dry_run:
        print("Dry run: nothing was changed.")
        return 0

    done: list[Change] = []
    try:
        await apply_changes(clients, changes, trust_topic=trust.record, applied=done.append)
    except AWS_ERRORS as error:
        return _fail(
            f"setup-aws: {describe_aws_error(error)}; applied {len(done)} of {len(changes)} "
            "changes, run it again to finish"
        )
    current = await _read_current(clients, trust, desired)
    left = plan_changes(desired, current)
    if left:
        return _fail(
            f"setup-aws: applied {len(done)} changes but AWS still shows {len(left)} to make "
            f"({left[0].describe()}); run it again"
        )
    print(f"Applied {len(done)} change{'s' if len(done) > 1 else ''}.")
    _print_notes(current)
    return 0


def _print_notes(current: Current) -> None:
    if current.topic is not None:
        print(f"Topic: {current.topic.arn} (trusted: the service takes its messages)")
    if current.subscription is not None and not current.subscription.confirmed:
        print(
            "Note: the subscription waits for confirmation. SNS posts it to the endpoint and the "
            "running service confirms it; `ses-sender doctor` shows when it has."
        )


def endpoint_problem(url: str) -> str | None:
    """Why `url` cannot be the SNS endpoint, or None."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return "must be an https:// URL, where SNS can reach this service"
    if not parts.path.endswith(EVENTS_PATH):
        return f"must end with {EVENTS_PATH}, the service's SNS endpoint"
    if parts.query or parts.fragment:
        return "must not have a query or a fragment"
    return None


async def doctor(settings: Settings, *, credentials_source: CredentialsSource) -> int:
    """One line per check; exit 1 when any check fails."""
    _quiet_libraries()
    counts: Counter[Status] = Counter()
    async for check in run_checks(settings, credentials_source=credentials_source):
        counts[check.status] += 1
        print(check.line(), flush=True)
    failed, warned = counts[Status.FAIL], counts[Status.WARN]
    print(f"{failed} failed, {warned} warning{'' if warned == 1 else 's'}, {counts[Status.OK]} ok")
    return 1 if failed else 0


def _quiet_libraries() -> None:
    """Unless LOG_LEVEL=DEBUG asks for everything."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def _refuse(message: str) -> int:
    print(f"ses-sender: {message}", file=sys.stderr)
    return 2


def _fail(message: str) -> int:
    print(f"ses-sender: {message}", file=sys.stderr)
    return 1
