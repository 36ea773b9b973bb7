"""`ses-sender doctor`: is this deployment ready to send and to hear back from SES?

Each check gives one `Check` (ok, warn or FAIL, with a detail a person can act on). The judging
functions are pure; `run_checks` gathers the facts and yields the checks in order as it goes.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.utils import parseaddr

from sqlalchemy import text
from sqlalchemy.engine import make_url

from ses_sender.aws_setup import resources
from ses_sender.aws_setup.plan import (
    EVENT_TYPES,
    EVENTS_PATH,
    SIGNATURE_VERSION,
    Destination,
    Subscription,
)
from ses_sender.aws_setup.resources import (
    AWS_ERRORS,
    Account,
    AwsClients,
    describe_aws_error,
    open_clients,
)
from ses_sender.config import Settings
from ses_sender.db.engine import create_engine, create_sessionmaker
from ses_sender.db.migrate import is_at_head
from ses_sender.ses_events import service as ses_events_service

DATABASE_TIMEOUT_S = 5.0
DAILY_QUOTA_WARNING = 0.8  # share of Max24HourSend already used that deserves a warning
SANDBOX_DAILY_LIMIT = 200  # emails per 24 h in the SES sandbox


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    status: Status
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


def ok(name: str, detail: str) -> Check:
    return Check(Status.OK, name, detail)


def warn(name: str, detail: str) -> Check:
    return Check(Status.WARN, name, detail)


def fail(name: str, detail: str) -> Check:
    return Check(Status.FAIL, name, detail)


def not_checked(name: str, reason: str) -> Check:
    return fail(name, f"not checked: {reason}")


DATABASE = "database"
MIGRATIONS = "migrations"
CREDENTIALS = "AWS credentials"
IDENTITY = "sender identity"
SANDBOX = "sandbox"
SENDING = "sending"
QUOTA = "quota"
CONFIGURATION_SET = "configuration set"
DESTINATION = "event destination"
TOPIC = "SNS topic"
SUBSCRIPTION = "subscription"
TRUST = "trusted topics"
# What depends on the configuration set, in the order it is checked.
_WIRING = (DESTINATION, TOPIC, SUBSCRIPTION)
_AWS = (IDENTITY, SANDBOX, SENDING, QUOTA, CONFIGURATION_SET, *_WIRING)


async def run_checks(
    settings: Settings, *, credentials_source: Callable[[], str | None]
) -> AsyncIterator[Check]:
    """`credentials_source` names where AWS credentials come from, or None: none found."""
    database = await check_database(settings)
    yield database
    if database.status is Status.OK:
        migrations = await check_migrations(settings)
    else:
        migrations = not_checked(MIGRATIONS, "the database is unreachable")
    yield migrations
    recorded = await recorded_topics(settings) if migrations.status is Status.OK else None
    trusted = None if recorded is None else recorded | frozenset(settings.sns_topic_arns)

    source = await asyncio.to_thread(credentials_source)
    if source is None:
        yield fail(
            CREDENTIALS,
            "none found (environment, shared files, SSO or container role; on an EC2 instance "
            "role set EMAIL_TRANSPORT=ses)",
        )
        for name in _AWS:
            yield not_checked(name, "no AWS credentials")
        yield judge_trust(trusted, None)
        return
    yield ok(CREDENTIALS, f"found ({source}), region {settings.aws_region}")
    async with open_clients(settings) as clients:
        async for check in _aws_checks(clients, settings, trusted):
            yield check


async def check_database(settings: Settings) -> Check:
    url = make_url(settings.sqlalchemy_url)
    where = url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)
    engine = create_engine(settings.sqlalchemy_url)
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_S), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:  # whatever the driver raises, the answer is "unreachable"
        return fail(DATABASE, f"unreachable: {_describe(error)} ({where})")
    finally:
        await engine.dispose()
    return ok(DATABASE, f"reachable ({where})")


async def check_migrations(settings: Settings) -> Check:
    engine = create_engine(settings.sqlalchemy_url)
    try:
        at_head = await is_at_head(engine)
    except Exception as error:  # an odd schema table is reported, not raised
        return fail(MIGRATIONS, f"cannot read the schema version: {_describe(error)}")
    finally:
        await engine.dispose()
    if not at_head:
        return fail(MIGRATIONS, "the schema is not at the latest version: run ses-sender migrate")
    return ok(MIGRATIONS, "the schema is at the latest version")


async def recorded_topics(settings: Settings) -> frozenset[str] | None:
    """The topics `setup-aws` recorded; None when the database cannot say."""
    engine = create_engine(settings.sqlalchemy_url)
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_S), create_sessionmaker(engine)() as session:
            return await ses_events_service.trusted_topics(session)
    except Exception:  # unreachable or odd: the database check already says which
        return None
    finally:
        await engine.dispose()


def judge_trust(trusted: frozenset[str] | None, topic_arn: str | None) -> Check:
    """Whether the service takes SES events at all, and from the configuration set's topic.

    `trusted`: SNS_TOPIC_ARNS and the recorded topics (None: the database could not say);
    `topic_arn`: the topic the configuration set publishes to, if it was found.
    """
    if trusted is None:
        return not_checked(TRUST, "the database cannot be read")
    if not trusted:
        return fail(
            TRUST,
            "none, so the service refuses every SES event: run ses-sender setup-aws (it "
            "records the topic it wires) or set SNS_TOPIC_ARNS",
        )
    if topic_arn is not None and topic_arn not in trusted:
        return fail(
            TRUST,
            f"{topic_arn} is not trusted, so the service refuses its messages: run "
            "ses-sender setup-aws, or add it to SNS_TOPIC_ARNS",
        )
    return ok(TRUST, ", ".join(sorted(trusted)))


async def _aws_checks(
    clients: AwsClients, settings: Settings, trusted: frozenset[str] | None
) -> AsyncIterator[Check]:
    yield await _guarded(IDENTITY, check_sender_identity(clients, settings))
    try:
        account = await resources.account(clients.sesv2)
    except AWS_ERRORS as error:
        for name in (SANDBOX, SENDING, QUOTA):
            yield fail(name, describe_aws_error(error))
    else:
        for check in judge_account(account, email_rate=settings.email_rate):
            yield check
    topic_arn: str | None = None
    async for check, arn in _wiring_checks(clients, settings):
        topic_arn = arn or topic_arn
        yield check
    yield judge_trust(trusted, topic_arn)


async def _guarded(name: str, check: Awaitable[Check]) -> Check:
    """The check, or a failure that says which AWS call went wrong."""
    try:
        return await check
    except AWS_ERRORS as error:
        return fail(name, describe_aws_error(error))


async def check_sender_identity(clients: AwsClients, settings: Settings) -> Check:
    """EMAIL_SENDER, and each entry of ALLOWED_SENDERS: a verified SES identity (an address,
    or its domain; a domain entry must be verified itself)."""
    if not settings.email_sender:
        return fail(IDENTITY, "EMAIL_SENDER is not set")
    address = parseaddr(settings.email_sender)[1]
    local, at, domain = address.rpartition("@")
    if not (local and at and domain):
        return fail(IDENTITY, f"EMAIL_SENDER has no address: {settings.email_sender!r}")
    verified, states = await _verified_as(clients, (address, domain))
    if verified is None:
        return fail(
            IDENTITY,
            f"{address} cannot send in {clients.region}: {', '.join(states)}; verify the "
            "address or its domain in SES",
        )
    detail = f"{address} can send: {verified} is verified"
    unverified: list[str] = []
    for entry in settings.allowed_senders:
        name = entry.lstrip("@")
        names = (name, name.rpartition("@")[2]) if "@" in name else (name,)
        allowed, allowed_states = await _verified_as(clients, names)
        if allowed is None:
            unverified.append(f"{name} ({', '.join(allowed_states)})")
    if unverified:
        return fail(
            IDENTITY,
            f"ALLOWED_SENDERS cannot send in {clients.region}: {'; '.join(unverified)}; verify "
            "each address or domain in SES",
        )
    if settings.allowed_senders:
        detail += f"; so are ALLOWED_SENDERS ({', '.join(settings.allowed_senders)})"
    return ok(IDENTITY, detail)


async def _verified_as(clients: AwsClients, names: Sequence[str]) -> tuple[str | None, list[str]]:
    """The first of `names` that is an identity verified for sending; else None, and the state
    of each."""
    states: list[str] = []
    for name in names:
        identity = await resources.email_identity(clients.sesv2, name)
        if identity is not None and identity.verified_for_sending:
            return name, states
        states.append(f"{name} {'is not an identity' if identity is None else identity.status}")
    return None, states


def judge_account(account: Account, *, email_rate: float) -> list[Check]:
    """The sandbox, sending and quota lines for what GetAccount reports."""
    return [_sandbox(account), _sending(account), _quota(account, email_rate)]


def _sandbox(account: Account) -> Check:
    if account.production_access:
        return ok(SANDBOX, "out of the sandbox (production access)")
    return warn(
        SANDBOX,
        f"the account is in the SES sandbox: it mails only verified addresses, at most "
        f"{SANDBOX_DAILY_LIMIT} a day; ask AWS for production access",
    )


def _sending(account: Account) -> Check:
    status = account.enforcement_status or "unknown"
    if not account.sending_enabled:
        return fail(SENDING, f"sending is paused for the account (enforcement {status})")
    if status == "SHUTDOWN":
        return fail(SENDING, "AWS has shut down sending for the account (enforcement SHUTDOWN)")
    if status == "PROBATION":
        return warn(SENDING, "enabled, but the account is on probation: watch bounces, complaints")
    return ok(SENDING, f"enabled (enforcement {status})")


def _quota(account: Account, email_rate: float) -> Check:
    rate, daily, sent = account.max_send_rate, account.max_24_hour_send, account.sent_last_24_hours
    unlimited = daily < 0
    summary = (
        f"{rate:g}/s, {'unlimited' if unlimited else f'{daily:,.0f}'} per 24 h, "
        f"{sent:,.0f} sent in the last 24 h"
    )
    if not unlimited and sent >= daily:
        return fail(QUOTA, f"the daily quota is used up: {summary}")
    if rate > 0 and email_rate > rate:
        return warn(
            QUOTA,
            f"EMAIL_RATE {email_rate:g}/s is above the account's rate, so SES will "
            f"throttle: {summary}",
        )
    if not unlimited and sent >= DAILY_QUOTA_WARNING * daily:
        return warn(QUOTA, f"over {DAILY_QUOTA_WARNING:.0%} of the daily quota used: {summary}")
    return ok(QUOTA, summary)


async def _wiring_checks(
    clients: AwsClients, settings: Settings
) -> AsyncIterator[tuple[Check, str | None]]:
    """Each check, with the topic the configuration set publishes to once it is known."""
    name = settings.ses_config_set
    if not name:
        yield (
            fail(
                CONFIGURATION_SET,
                "SES_CONFIG_SET is not set, so SES publishes no events for our mail; set it, then "
                "run ses-sender setup-aws",
            ),
            None,
        )
        for check_name in _WIRING:
            yield not_checked(check_name, "no configuration set"), None
        return
    try:
        exists = await resources.configuration_set_exists(clients.sesv2, name)
        destinations = await resources.event_destinations(clients.sesv2, name) if exists else []
    except AWS_ERRORS as error:
        yield fail(CONFIGURATION_SET, describe_aws_error(error)), None
        for check_name in _WIRING:
            yield not_checked(check_name, "the configuration set could not be read"), None
        return
    if not exists:
        yield (
            fail(
                CONFIGURATION_SET,
                f"{name} does not exist in {clients.region}: run ses-sender setup-aws",
            ),
            None,
        )
        for check_name in _WIRING:
            yield not_checked(check_name, "no configuration set"), None
        return
    yield ok(CONFIGURATION_SET, f"{name} exists in {clients.region}"), None

    check, destination = judge_destinations(destinations)
    yield check, None
    if destination is None or destination.topic_arn is None:
        yield not_checked(TOPIC, "no SNS event destination"), None
        yield not_checked(SUBSCRIPTION, "no SNS event destination"), None
        return
    topic_arn = destination.topic_arn
    yield await _guarded(TOPIC, check_topic(clients, name, topic_arn)), topic_arn
    endpoint = f"{settings.server_host}{EVENTS_PATH}"
    yield await _guarded(SUBSCRIPTION, check_subscription(clients, topic_arn, endpoint)), topic_arn


def judge_destinations(destinations: list[Destination]) -> tuple[Check, Destination | None]:
    """The enabled SNS destination that carries the most event types, and what it misses."""
    candidates = [d for d in destinations if d.enabled and d.topic_arn is not None]
    if not candidates:
        return fail(DESTINATION, "no enabled SNS event destination: run ses-sender setup-aws"), None
    best = max(candidates, key=lambda d: len(d.event_types & EVENT_TYPES))
    missing = sorted(EVENT_TYPES - best.event_types)
    if missing:
        return warn(
            DESTINATION,
            f"{best.name} publishes to {best.topic_arn} but not {', '.join(missing)}: "
            "run ses-sender setup-aws",
        ), best
    return ok(
        DESTINATION, f"{best.name} publishes all {len(EVENT_TYPES)} event types to {best.topic_arn}"
    ), best


async def check_topic(clients: AwsClients, configuration_set: str, topic_arn: str) -> Check:
    topic = await resources.topic(clients.sns, topic_arn, configuration_set)
    if topic is None:
        return fail(TOPIC, f"{topic_arn} does not exist: run ses-sender setup-aws")
    if not topic.ses_may_publish:
        return fail(
            TOPIC,
            f"the policy of {topic_arn} does not let SES publish {configuration_set}'s events "
            "to it: run ses-sender setup-aws",
        )
    if topic.signature_version != SIGNATURE_VERSION:
        return warn(
            TOPIC,
            f"{topic_arn} signs with SignatureVersion {topic.signature_version} (SHA1); "
            f"set {SIGNATURE_VERSION} (SHA256)",
        )
    return ok(TOPIC, f"{topic_arn} (SignatureVersion {topic.signature_version})")


async def check_subscription(clients: AwsClients, topic_arn: str, endpoint: str) -> Check:
    subscription = await resources.find_subscription(clients.sns, topic_arn, endpoint)
    if subscription is None:
        others = [url for url, _arn in await resources.subscriptions(clients.sns, topic_arn)]
        subscribed = f" (it has {', '.join(others)})" if others else ""
        return fail(
            SUBSCRIPTION,
            f"{endpoint} is not subscribed to {topic_arn}{subscribed}: run ses-sender setup-aws "
            f"--endpoint {endpoint}",
        )
    return judge_subscription(subscription)


def judge_subscription(subscription: Subscription) -> Check:
    if not subscription.confirmed:
        return fail(
            SUBSCRIPTION,
            f"{subscription.endpoint} has not confirmed the subscription: the service confirms it "
            "when SNS reaches it there (is it running, reachable, and is the topic trusted?)",
        )
    if subscription.raw_message_delivery:
        return fail(
            SUBSCRIPTION,
            "raw message delivery is on: messages arrive unsigned and the service refuses them; "
            "run ses-sender setup-aws",
        )
    if not subscription.retries_for_an_hour:
        return warn(
            SUBSCRIPTION,
            f"{subscription.endpoint} is confirmed, but SNS gives up on a failed delivery after "
            "3 retries in a minute (its default); run ses-sender setup-aws to retry for an hour",
        )
    return ok(SUBSCRIPTION, f"{subscription.endpoint} is confirmed")


def _describe(error: BaseException) -> str:
    reason = " ".join(str(error).split())
    return f"{type(error).__name__}: {reason}" if reason else type(error).__name__
