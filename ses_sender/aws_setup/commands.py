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
from urllib.parse import urlsplit

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

    desired = Desired(settings.ses_config_set, endpoint)
    print(
        f"Configuration set {desired.configuration_set} in {settings.aws_region}, "
        f"SES events to {endpoint}"
    )
    try:
        async with open_clients(settings) as clients:
            return await _plan_and_apply(clients, settings, desired, dry_run=dry_run)
    except AWS_ERRORS as error:
        return _fail(f"setup-aws: {describe_aws_error(error)}")


async def _plan_and_apply(
    clients: AwsClients, settings: Settings, desired: Desired, *, dry_run: bool
) -> int:
    current = await read_current(clients, desired)
    changes = plan_changes(desired, current)
    if not changes:
        print("Plan: no changes, everything is in place.")
        _print_notes(settings, current)
        return 0
    print(f"Plan: {len(changes)} change{'s' if len(changes) > 1 else ''}")
    for change in changes:
        print(f"  + {change.describe()}")
    if dry_run:
        print("Dry run: nothing was changed.")
        return 0

    done: list[Change] = []
    try:
        await apply_changes(clients, changes, applied=done.append)
    except AWS_ERRORS as error:
        return _fail(
            f"setup-aws: {describe_aws_error(error)}; applied {len(done)} of {len(changes)} "
            "changes, run it again to finish"
        )
    current = await read_current(clients, desired)
    left = plan_changes(desired, current)
    if left:
        return _fail(
            f"setup-aws: applied {len(done)} changes but AWS still shows {len(left)} to make "
            f"({left[0].describe()}); run it again"
        )
    print(f"Applied {len(done)} change{'s' if len(done) > 1 else ''}.")
    _print_notes(settings, current)
    return 0


def _print_notes(settings: Settings, current: Current) -> None:
    topic_arn = current.topic.arn if current.topic is not None else None
    if topic_arn is not None:
        print(f"Topic: {topic_arn}")
        if settings.sns_topic_arns and topic_arn not in settings.sns_topic_arns:
            print(
                f"Note: SNS_TOPIC_ARNS does not include {topic_arn}: add it, or the service "
                "refuses the topic's messages (and its subscription confirmation)."
            )
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
