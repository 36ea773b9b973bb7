"""`ses-sender`: the process entry points and the composition root."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import functools
import gc
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Sequence

import botocore.session
import sentry_sdk
import uvicorn
from pydantic import ValidationError

from ses_sender.app import create_app
from ses_sender.aws_setup import commands as aws_commands
from ses_sender.config import Settings, TransportKind
from ses_sender.db.migrate import (
    DatabaseUnreachable,
    SchemaOutOfDate,
    ensure_schema,
    upgrade_to_head_async,
)
from ses_sender.delivery.account import AccountWatch
from ses_sender.delivery.compose import Composer
from ses_sender.delivery.pacer import Pacer
from ses_sender.delivery.retry import RetryPolicy
from ses_sender.delivery.schedule import DatabaseSchedule
from ses_sender.delivery.worker import Worker
from ses_sender.guardrail.monitor import GuardrailMonitor
from ses_sender.guardrail.service import Limits
from ses_sender.observability import configure_logging, flush_sentry, init_sentry
from ses_sender.runtime import Runtime, TransportChoice, open_runtime
from ses_sender.ses_events.topics import TopicsUnavailable, TrustedTopics
from ses_sender.transports.base import Transport
from ses_sender.transports.outbox import OutboxTransport
from ses_sender.transports.ses import SesTransport
from ses_sender.transports.smtp import SmtpTransport
from ses_sender.webhooks.retry import WebhookRetryPolicy
from ses_sender.webhooks.worker import WebhookSender

log = logging.getLogger("ses_sender")


class Role(enum.Flag):
    API = enum.auto()
    WORKER = enum.auto()


SideTask = GuardrailMonitor | WebhookSender | AccountWatch


class SettingsError(Exception):
    """A setting that stops start-up; printed as one line."""


COMMANDS = {
    "serve": (
        Role.API | Role.WORKER,
        "Run the HTTP API and a delivery worker in one process (migrates an SQLite database).",
    ),
    "api": (Role.API, "Run the HTTP API only (scale out behind a load balancer)."),
    "worker": (Role.WORKER, "Run a delivery worker only (claims and sends queued email)."),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        return _refuse(describe_settings_error(error))
    configure_logging(settings)
    try:
        if args.command == "migrate":
            asyncio.run(upgrade_to_head_async(settings.sqlalchemy_url))
            log.info("database is at the latest migration")
            return 0
        if args.command == "setup-aws":
            return asyncio.run(
                aws_commands.setup_aws(
                    settings,
                    endpoint=args.endpoint,
                    dry_run=args.dry_run,
                    credentials_source=_credentials_source(settings),
                )
            )
        if args.command == "doctor":
            return asyncio.run(
                aws_commands.doctor(settings, credentials_source=_credentials_source(settings))
            )
        role = COMMANDS[args.command][0]
        return asyncio.run(run_process(settings, role))
    except (SettingsError, SchemaOutOfDate) as error:
        return _refuse(str(error))
    except DatabaseUnreachable as error:
        print(f"ses-sender: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ses-sender",
        description="Send email through Amazon SES at the account's full rate and track it. "
        "Settings come from the environment and .env (see the README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_role, summary) in COMMANDS.items():
        commands.add_parser(name, help=summary, description=summary)
    migrate = "Bring the database schema to the latest version (safe to run again)."
    commands.add_parser("migrate", help=migrate, description=migrate)
    _add_aws_parsers(commands)
    return parser


def _add_aws_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    setup = commands.add_parser(
        "setup-aws",
        help="Create or update the SES configuration set, its SNS topic and our subscription.",
        description="Wire SES events to this service: creates or updates the configuration set "
        "SES_CONFIG_SET with an SNS event destination for all ten event types, the SNS topic "
        "<SES_CONFIG_SET>-ses-events (SignatureVersion 2), and the topic's HTTPS subscription of "
        "the endpoint (raw message delivery off). Prints the plan, then applies it. Safe to run "
        "again: what is already in place is left alone. Credentials, region and endpoints as "
        "for sending (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL_SESV2, "
        "AWS_ENDPOINT_URL_SNS, ...).",
    )
    setup.add_argument(
        "--endpoint",
        metavar="URL",
        help="the public https URL of this service's SNS endpoint, "
        "https://<public host>/v1/events/results (default: SERVER_HOST + /v1/events/results)",
    )
    setup.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    doctor = (
        "Check the database, migrations, AWS credentials, the sender identity, sandbox and "
        "quota, the configuration set and the SNS subscription; one line each, exit 1 if any fails."
    )
    commands.add_parser("doctor", help=doctor, description=doctor)


def _refuse(message: str) -> int:
    print(f"ses-sender: {message}", file=sys.stderr)
    return 2


def describe_settings_error(error: ValidationError) -> str:
    first = error.errors()[0]
    variable = ".".join(str(part) for part in first["loc"]) or "settings"
    message = first["msg"].removeprefix("Value error, ")
    given = first.get("input")
    shown = (
        f" (got {given!r})"
        if isinstance(given, str | int | float) and variable != "settings"
        else ""
    )
    return f"{variable}: {message}{shown}"


async def run_process(settings: Settings, role: Role) -> int:
    init_sentry(settings)
    try:
        choice = choose_transport(settings, sending=Role.WORKER in role)
        await ensure_schema(
            settings.sqlalchemy_url, migrate_sqlite=Role.API in role and Role.WORKER in role
        )
        async with open_runtime(settings, transport=choice) as runtime:
            log.info("sending through %s: %s", choice.kind, choice.why)
            return await _run_roles(runtime, role)
    finally:
        flush_sentry()


async def _run_roles(runtime: Runtime, role: Role) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: dict[str, asyncio.Task[None]] = {}
    server: _Server | None = None
    worker: Worker | None = None
    side_tasks: dict[str, SideTask] = {}
    transport: Transport | None = None
    try:
        if Role.WORKER in role:
            transport = await start_transport(runtime.settings, runtime.transport)
            pacer = Pacer(
                runtime.settings.email_rate, schedule=DatabaseSchedule(runtime.sessionmaker)
            )
            side_tasks = build_side_tasks(runtime)
            if isinstance(transport, SesTransport):
                account = build_account_watch(runtime, transport, pacer)
                await account.check()  # the account's rate is known before the first send
                side_tasks["account"] = account
            worker = build_worker(runtime, transport, pacer)
            tasks["worker"] = asyncio.create_task(worker.run(), name="worker")
            for name, side in side_tasks.items():
                tasks[name] = asyncio.create_task(side.run(), name=name)
        if Role.API in role:
            await _announce_trusted_topics(runtime.topics)
            server = _Server(
                uvicorn.Config(
                    create_app(runtime),
                    host=runtime.settings.server_bind,
                    port=runtime.settings.server_port,
                    log_config=None,
                    lifespan="off",
                )
            )
            tasks["api"] = asyncio.create_task(server.serve(), name="api")
        _spare_the_collector_start_up()
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([stopping, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        log.info("stopping")
        if server is not None:
            server.should_exit = True
        if worker is not None:
            worker.stop()
        for side in side_tasks.values():
            side.stop()
        return await _exit_code(tasks)
    finally:
        if transport is not None:
            await transport.close()


async def _announce_trusted_topics(topics: TrustedTopics) -> None:
    """Say at start-up whose SES events count: with no topic, none do."""
    try:
        trusted = topics.configured | await topics.recorded()
    except TopicsUnavailable as error:
        log.warning("could not read the trusted SNS topics: %s", error)
        return
    if trusted:
        log.info("SES events are taken from the SNS topics %s", ", ".join(sorted(trusted)))
    else:
        log.warning(
            "no SNS topic is trusted, so every SES event and subscription confirmation is "
            "refused: run `ses-sender setup-aws` (it records the topic it wires) or set "
            "SNS_TOPIC_ARNS"
        )


def _spare_the_collector_start_up() -> None:
    """Put what start-up made (imports, the SDK's service models, the app) out of the cycle
    collector's sight: it lives as long as the process anyway.

    A full collection otherwise scans all of it: 90-260 ms in a worker, during which a send
    that had left the pacer waits unseen, reaches SES that much later than its slot and can
    join the next second's sends there (a throttle). After this, full collections scan only
    what the process made since.
    """
    gc.collect()
    gc.freeze()


async def _exit_code(tasks: dict[str, asyncio.Task[None]]) -> int:
    code = 0
    for name, task in tasks.items():
        try:
            await task
        except (Exception, SystemExit) as error:
            log.error("the %s stopped with an error: %r", name, error, exc_info=error)
            sentry_sdk.capture_exception(error)
            code = 1
    return code


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: this process stops API and worker together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def choose_transport(settings: Settings, *, sending: bool) -> TransportChoice:
    """Which transport the process sends (or, API only, reports) through; why, for the logs."""
    if settings.email_transport is not None:
        return TransportChoice(settings.email_transport, "EMAIL_TRANSPORT is set")
    source = aws_credentials_source(settings)
    if source is None:
        return TransportChoice(
            TransportKind.OUTBOX,
            "no EMAIL_TRANSPORT and no AWS credentials: emails are written to "
            f"{settings.outbox_dir}",
        )
    if sending and not settings.email_sender:
        raise SettingsError(
            f"EMAIL_SENDER: required to send through SES (credentials from {source})"
        )
    return TransportChoice(TransportKind.SES, f"AWS credentials found ({source})")


def aws_credentials_source(settings: Settings, *, instance_role: bool = False) -> str | None:
    """Where SES credentials would come from, without asking the EC2 metadata service.

    On an instance role, set EMAIL_TRANSPORT=ses: probing the metadata endpoint here would
    stall every start-up off EC2. `instance_role=True` asks it too.
    """
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        return "AWS_ACCESS_KEY_ID"
    resolver = botocore.session.get_session().get_component("credential_provider")
    if not instance_role:
        resolver.remove("iam-role")
    credentials = resolver.load_credentials()
    return None if credentials is None else str(credentials.method)


def _credentials_source(settings: Settings) -> Callable[[], str | None]:
    """The metadata service is asked only where the operator said SES is the transport."""
    instance_role = settings.email_transport is TransportKind.SES
    return functools.partial(aws_credentials_source, settings, instance_role=instance_role)


async def start_transport(settings: Settings, choice: TransportChoice) -> Transport:
    match choice.kind:
        case TransportKind.SES:
            ses = SesTransport(
                settings.aws_region,
                access_key_id=settings.aws_access_key_id,
                secret_access_key=settings.aws_secret_access_key,
                session_token=settings.aws_session_token,
                configuration_set=settings.ses_config_set,
                timeout_s=settings.send_timeout_s,
                max_connections=settings.concurrency,
            )
            await ses.start()
            return ses
        case TransportKind.SMTP:
            assert settings.smtp_host is not None  # Settings checks it
            return SmtpTransport(
                settings.smtp_host,
                settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password,
                security=settings.smtp_security,
                timeout_s=settings.send_timeout_s,
                max_connections=settings.concurrency,
                configuration_set=settings.ses_config_set,
            )
        case TransportKind.OUTBOX:
            return OutboxTransport(settings.outbox_dir, configuration_set=settings.ses_config_set)


def build_worker(runtime: Runtime, transport: Transport, pacer: Pacer) -> Worker:
    settings = runtime.settings
    return Worker(
        sessionmaker=runtime.sessionmaker,
        transport=transport,
        composer=Composer(
            sender=settings.sender_address,
            public_base_url=settings.server_host,
            tokens=runtime.tokens,
        ),
        pacer=pacer,
        retry=RetryPolicy(settings.max_attempts),
        clock=runtime.clock,
        concurrency=settings.concurrency,
        lease_s=settings.lease_s,
        send_timeout_s=settings.send_timeout_s,
        shutdown_grace_s=settings.shutdown_grace_s,
        work_available=runtime.work_available,
        soft_bounces=runtime.soft_bounces,
    )


def build_account_watch(runtime: Runtime, ses: SesTransport, pacer: Pacer) -> AccountWatch:
    settings = runtime.settings
    return AccountWatch(
        source=ses,
        pacer=pacer,
        sessionmaker=runtime.sessionmaker,
        clock=runtime.clock,
        email_rate=settings.email_rate,
        headroom=settings.rate_headroom,
        interval_s=settings.account_check_s,
    )


def build_side_tasks(runtime: Runtime) -> dict[str, SideTask]:
    """What runs beside the email worker: the reputation guardrail and webhook delivery."""
    settings = runtime.settings
    return {
        "guardrail": GuardrailMonitor(
            sessionmaker=runtime.sessionmaker,
            limits=Limits(
                bounce_rate=settings.guardrail_bounce_rate,
                complaint_rate=settings.guardrail_complaint_rate,
                min_sends=settings.guardrail_min_sends,
            ),
            clock=runtime.clock,
            interval_s=settings.guardrail_check_s,
        ),
        "webhooks": WebhookSender(
            sessionmaker=runtime.sessionmaker,
            clock=runtime.clock,
            retry=WebhookRetryPolicy(),
            concurrency=settings.webhook_concurrency,
            timeout_s=settings.webhook_timeout_s,
            ssl_cert_file=settings.ssl_cert_file,
        ),
    }
