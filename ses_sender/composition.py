"""The composition root: every object a process runs, built from the settings and wired
together here and nowhere else. Features declare what they need (the engine's ports, the
endpoints' provided dependencies); this module gives it to them.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import botocore.session
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ses_sender import instruments
from ses_sender.clock import Clock, SystemClock
from ses_sender.composer.service import EmailComposer
from ses_sender.config import Settings, SettingsError, TransportKind
from ses_sender.control.endpoints import router as control_router
from ses_sender.control.service import TopicHolds
from ses_sender.dashboard.dependencies import ACCOUNT, SESSIONS, CsrfRefused, SignInRequired
from ses_sender.dashboard.endpoints import redirect_to_sign_in, refuse_without_csrf
from ses_sender.dashboard.endpoints import router as dashboard_router
from ses_sender.dashboard.service import Account
from ses_sender.dashboard.sessions import DashboardSessions
from ses_sender.db.engine import create_engine, create_sessionmaker, is_sqlite
from ses_sender.db.turns import WriterTurns
from ses_sender.delivery.account import AccountWatch
from ses_sender.delivery.claimer import Claimer
from ses_sender.delivery.concurrency import InFlightLimit
from ses_sender.delivery.dependencies import WAKEUP
from ses_sender.delivery.housekeeping import SWEEP_INTERVAL_S, Housekeeping
from ses_sender.delivery.journal import OutcomeJournal
from ses_sender.delivery.leases import Leases
from ses_sender.delivery.outage import NoOutageWatch, OutageWatch, ProviderOutage
from ses_sender.delivery.pacer import Pacer
from ses_sender.delivery.pause_gate import PauseGate
from ses_sender.delivery.ports import HousekeepingJob
from ses_sender.delivery.recorder import Recorder
from ses_sender.delivery.retry import RetryPolicy
from ses_sender.delivery.schedule import DatabaseSchedule
from ses_sender.delivery.wakeup import Wakeup
from ses_sender.delivery.worker import Worker
from ses_sender.guardrail.monitor import GuardrailMonitor
from ses_sender.guardrail.service import Limits
from ses_sender.health.dependencies import HEALTH
from ses_sender.health.endpoints import router as health_router
from ses_sender.health.service import Health
from ses_sender.messages.dependencies import (
    INGEST_TURNS,
    PUBLIC_BASE_URL,
    RECIPIENT_LIMIT,
    SENDER_POLICY,
    TRACK_CLICKS,
)
from ses_sender.messages.endpoints import router as messages_router
from ses_sender.messages.envelope import SenderPolicy
from ses_sender.messages.retention import ExpireIdempotencyKeys
from ses_sender.metrics.dependencies import DATABASE_GAUGES, METRICS_KEY_REQUIRED
from ses_sender.metrics.endpoints import router as metrics_router
from ses_sender.metrics.service import DatabaseGauges
from ses_sender.sending.endpoints import router as sending_router
from ses_sender.sending.service import SendingPauses
from ses_sender.ses_events import service as ses_events_service
from ses_sender.ses_events.dependencies import FETCHER, INGESTER, VERIFIER
from ses_sender.ses_events.endpoints import router as ses_events_router
from ses_sender.ses_events.hooks import SesEventHooks
from ses_sender.ses_events.ingester import Ingester
from ses_sender.ses_events.retention import PruneEventPayloads
from ses_sender.ses_events.sns import CertificateStore, HttpsFetcher, SnsVerifier
from ses_sender.ses_events.topics import TrustedTopics
from ses_sender.stats.endpoints import router as stats_router
from ses_sender.stats.hooks import StatsHooks
from ses_sender.suppression.endpoints import router as suppression_router
from ses_sender.suppression.service import SoftBounceRule, SuppressedAddresses
from ses_sender.tasks import Periodic, SideTask
from ses_sender.templates.endpoints import router as templates_router
from ses_sender.tracking import repository as tracking_repository
from ses_sender.tracking.classify import Signatures
from ses_sender.tracking.dependencies import HITS, LINK_TARGETS, TOKENS
from ses_sender.tracking.endpoints import clicks_router
from ses_sender.tracking.endpoints import router as tracking_router
from ses_sender.tracking.links import ClickLinks
from ses_sender.tracking.recorder import HitRecorder
from ses_sender.tracking.service import Judge, LinkTargets
from ses_sender.tracking.tokens import TrackingTokens
from ses_sender.transports.base import Transport
from ses_sender.transports.outbox import OutboxTransport
from ses_sender.transports.ses import SesTransport
from ses_sender.transports.smtp import SmtpTransport, is_ses_smtp_host
from ses_sender.unsubscribe.dependencies import SENDER
from ses_sender.unsubscribe.endpoints import router as unsubscribe_router
from ses_sender.web.auth import API_KEYS, ApiKeys
from ses_sender.web.client import TRUSTED_PROXIES, TrustedProxies
from ses_sender.web.dependencies import CLOCK, SESSIONMAKER
from ses_sender.web.edge import EdgeGuard
from ses_sender.web.errors import install_error_handlers
from ses_sender.web.openapi import install_openapi
from ses_sender.web.timing import RequestTiming
from ses_sender.webhooks.dependencies import ALLOW_PRIVATE
from ses_sender.webhooks.endpoints import router as webhooks_router
from ses_sender.webhooks.retention import PruneWebhookDeliveries
from ses_sender.webhooks.retry import WebhookRetryPolicy
from ses_sender.webhooks.worker import WebhookSender

TRACKING_SECRET_NAME = "tracking"  # noqa: S105 - the name of a secret, not one


@dataclass(frozen=True)
class TransportChoice:
    kind: TransportKind
    why: str  # said at start-up and in /health


@dataclass
class Runtime:
    """What every role of a process shares, built once from the settings."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    clock: Clock
    api_keys: ApiKeys
    tokens: TrackingTokens
    transport: TransportChoice
    sns: SnsVerifier
    topics: TrustedTopics
    fetcher: HttpsFetcher
    ses_events: Ingester
    soft_bounces: SoftBounceRule
    metrics: DatabaseGauges
    dashboard: DashboardSessions
    hits: HitRecorder  # opens and clicks, recorded after their answer
    link_targets: LinkTargets
    # Set by the API after a commit that queued mail; an in-process worker waits on it.
    wakeup: Wakeup = field(default_factory=Wakeup)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    transport: TransportChoice,
    clock: Clock | None = None,
    certificates: CertificateStore | None = None,
) -> AsyncIterator[Runtime]:
    """`certificates` replaces the SNS certificate store (tests seed one; nothing is fetched)."""
    clock = clock or SystemClock()
    engine = create_engine(settings.sqlalchemy_url, pool_size=settings.db_pool_size)
    fetcher = HttpsFetcher(ssl_cert_file=settings.ssl_cert_file)
    sessionmaker = create_sessionmaker(engine)
    soft_bounces = SoftBounceRule(
        settings.soft_bounce_limit, timedelta(days=settings.soft_bounce_window_days)
    )
    ingester = Ingester(sessionmaker, soft_bounces=soft_bounces)

    async def recorded_topics() -> frozenset[str]:
        async with sessionmaker() as session:
            return await ses_events_service.trusted_topics(session)

    topics = TrustedTopics(settings.sns_topic_arns, recorded_topics)
    secret = await _tracking_secret(settings, sessionmaker, clock)
    tokens = TrackingTokens(secret)
    judge = Judge(Signatures.packaged(), timedelta(seconds=settings.machine_click_window_s))
    hits = HitRecorder(sessionmaker, judge=judge, clock=clock)
    try:
        yield Runtime(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            clock=clock,
            api_keys=ApiKeys(settings.api_keys),
            tokens=tokens,
            transport=transport,
            sns=SnsVerifier(
                certificates or CertificateStore(fetcher.get), clock=clock.now, topics=topics
            ),
            topics=topics,
            fetcher=fetcher,
            ses_events=ingester,
            soft_bounces=soft_bounces,
            metrics=DatabaseGauges(sessionmaker, clock=clock),
            dashboard=DashboardSessions(secret, settings.api_keys),
            hits=hits,
            link_targets=LinkTargets(sessionmaker, ClickLinks(settings.server_host, tokens)),
        )
    finally:
        await hits.settle()
        await ingester.close()
        await fetcher.close()
        await engine.dispose()


async def _tracking_secret(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock
) -> str:
    if settings.tracking_secret:
        return settings.tracking_secret
    async with sessionmaker() as session, session.begin():
        return await tracking_repository.shared_secret(
            session, TRACKING_SECRET_NAME, now=clock.now()
        )


# -- the HTTP API -----------------------------------------------------------------------------


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="ses-sender",
        summary="Sends email through Amazon SES and tracks what happened to every message.",
        version="0.1.0",
        # FastAPI's pages load their scripts from a CDN: only the document is served, for
        # whatever viewer the reader trusts.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(RequestTiming)
    app.add_middleware(EdgeGuard)
    # The router tries routes in this order: the public pixel and redirect, the busiest by far,
    # come first (last, each click went through some 30 other routes' path tests).
    for router in (
        clicks_router,
        tracking_router,
        health_router,
        metrics_router,
        messages_router,
        templates_router,
        stats_router,
        control_router,
        ses_events_router,
        suppression_router,
        unsubscribe_router,
        webhooks_router,
        sending_router,
        dashboard_router,
    ):
        app.include_router(router)
    app.add_exception_handler(SignInRequired, redirect_to_sign_in)
    app.add_exception_handler(CsrfRefused, refuse_without_csrf)
    CLOCK.provide(app, runtime.clock)
    SESSIONMAKER.provide(app, runtime.sessionmaker)
    API_KEYS.provide(app, runtime.api_keys)
    TOKENS.provide(app, runtime.tokens)
    HITS.provide(app, runtime.hits)
    LINK_TARGETS.provide(app, runtime.link_targets)
    TRUSTED_PROXIES.provide(app, TrustedProxies(runtime.settings.forwarded_allow_ips))
    WAKEUP.provide(app, runtime.wakeup)
    RECIPIENT_LIMIT.provide(app, runtime.settings.max_recipients_per_request)
    INGEST_TURNS.provide(app, WriterTurns(enabled=is_sqlite(runtime.engine)))
    _provide_metrics(app, runtime)
    SENDER_POLICY.provide(
        app,
        SenderPolicy.of(runtime.settings.sender_address, runtime.settings.allowed_senders),
    )
    PUBLIC_BASE_URL.provide(app, runtime.settings.server_host)
    TRACK_CLICKS.provide(app, runtime.settings.track_clicks)
    ALLOW_PRIVATE.provide(app, runtime.settings.webhook_allow_private)
    VERIFIER.provide(app, runtime.sns)
    FETCHER.provide(app, runtime.fetcher)
    INGESTER.provide(app, runtime.ses_events)
    SENDER.provide(app, runtime.settings.sender_address)
    SESSIONS.provide(app, runtime.dashboard)
    ACCOUNT.provide(
        app, Account(email_rate=runtime.settings.email_rate, limits=guardrail_limits(runtime))
    )
    HEALTH.provide(
        app,
        Health(
            sessionmaker=runtime.sessionmaker,
            clock=runtime.clock,
            transport={"kind": runtime.transport.kind, "detail": runtime.transport.why},
            topics=runtime.topics,
        ),
    )
    return app


def create_metrics_app(runtime: Runtime) -> FastAPI:
    """`/metrics` alone, on METRICS_PORT: what a worker process serves."""
    app = FastAPI(title="ses-sender metrics", openapi_url=None, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.include_router(metrics_router)
    API_KEYS.provide(app, runtime.api_keys)
    _provide_metrics(app, runtime)
    return app


def _provide_metrics(app: FastAPI, runtime: Runtime) -> None:
    DATABASE_GAUGES.provide(app, runtime.metrics)
    METRICS_KEY_REQUIRED.provide(app, runtime.settings.metrics_api_key_required)


# -- the delivery engine ----------------------------------------------------------------------


def build_pacer(runtime: Runtime) -> Pacer:
    return Pacer(runtime.settings.email_rate, schedule=DatabaseSchedule(runtime.sessionmaker))


def build_pause_gate(runtime: Runtime) -> PauseGate:
    return PauseGate(runtime.sessionmaker, pauses=SendingPauses(), clock=runtime.clock)


def build_worker(
    runtime: Runtime,
    transport: Transport,
    pacer: Pacer,
    *,
    pauses: PauseGate | None = None,
    outage: OutageWatch | None = None,
) -> Worker:
    """`pauses` and `outage`: shared with the outage probe, when the transport has one."""
    settings = runtime.settings
    in_flight = InFlightLimit(settings.concurrency)
    leases = Leases(
        runtime.sessionmaker,
        clock=runtime.clock,
        lease_s=settings.lease_s,
        send_timeout_s=settings.send_timeout_s,
    )
    recorder = Recorder(
        runtime.sessionmaker,
        hooks=[SesEventHooks(runtime.soft_bounces)],
        counter=StatsHooks(),
        clock=runtime.clock,
        journal=OutcomeJournal(settings.outcome_journal_dir),
        leases=leases,
        batch_size=settings.concurrency // 2,
        recorded=in_flight.release,
        every_interval=pacer.settle,
    )
    instruments.watch_engine(
        in_flight=lambda: in_flight.held,
        in_flight_limit=lambda: in_flight.limit,
        paced_rate=lambda: pacer.rate,
        target_rate=lambda: pacer.target,
    )
    return Worker(
        claimer=Claimer(
            runtime.sessionmaker,
            gates=[SuppressedAddresses(), TopicHolds()],
            counter=StatsHooks(),
            clock=runtime.clock,
            leases=leases,
        ),
        leases=leases,
        composer=EmailComposer(
            sender=settings.sender_address,
            public_base_url=settings.server_host,
            tokens=runtime.tokens,
            track_clicks=settings.track_clicks,
        ),
        transport=transport,
        pacer=pacer,
        recorder=recorder,
        pauses=pauses or build_pause_gate(runtime),
        retry=RetryPolicy(settings.max_attempts),
        clock=runtime.clock,
        in_flight=in_flight,
        max_in_flight=settings.concurrency,
        send_timeout_s=settings.send_timeout_s,
        shutdown_grace_s=settings.shutdown_grace_s,
        wakeup=runtime.wakeup,
        outage=outage or NoOutageWatch(),
    )


def build_account_watch(runtime: Runtime, ses: SesTransport, pacer: Pacer) -> AccountWatch:
    settings = runtime.settings
    return AccountWatch(
        source=ses,
        pacer=pacer,
        pauses=SendingPauses(),
        sessionmaker=runtime.sessionmaker,
        clock=runtime.clock,
        email_rate=settings.email_rate,
        headroom=settings.rate_headroom,
        interval_s=settings.account_check_s,
    )


def build_outage_watch(runtime: Runtime, ses: SesTransport, gate: PauseGate) -> ProviderOutage:
    settings = runtime.settings
    return ProviderOutage(
        source=ses,
        pauses=SendingPauses(),
        gate=gate,
        sessionmaker=runtime.sessionmaker,
        clock=runtime.clock,
        failures_to_pause=settings.ses_outage_failures,
        probe_first_s=settings.ses_outage_probe_s,
        probe_max_s=settings.ses_outage_probe_max_s,
        timeout_s=settings.send_timeout_s,
    )


def guardrail_limits(runtime: Runtime) -> Limits:
    settings = runtime.settings
    return Limits(
        bounce_rate=settings.guardrail_bounce_rate,
        complaint_rate=settings.guardrail_complaint_rate,
        min_sends=settings.guardrail_min_sends,
    )


def retention_jobs(settings: Settings) -> list[HousekeepingJob]:
    """The housekeeping jobs that delete what is kept for a while only."""
    jobs: list[HousekeepingJob] = [
        ExpireIdempotencyKeys(timedelta(hours=settings.idempotency_key_ttl_hours)),
        PruneWebhookDeliveries(timedelta(days=settings.webhook_delivery_retention_days)),
    ]
    if settings.event_raw_retention_days:  # 0 keeps them
        jobs.append(PruneEventPayloads(timedelta(days=settings.event_raw_retention_days)))
    return jobs


def build_side_tasks(runtime: Runtime) -> dict[str, SideTask]:
    """What runs beside the email worker: its housekeeping, the reputation guardrail and
    webhook delivery."""
    settings = runtime.settings
    hooks = SesEventHooks(runtime.soft_bounces)
    stats = StatsHooks()
    housekeeping = Housekeeping(
        runtime.sessionmaker,
        evidence=hooks,
        counter=stats,
        jobs=[hooks, stats, *retention_jobs(settings)],
        clock=runtime.clock,
    )
    guardrail = GuardrailMonitor(
        sessionmaker=runtime.sessionmaker, limits=guardrail_limits(runtime), clock=runtime.clock
    )
    return {
        "housekeeping": Periodic("housekeeping", housekeeping.sweep, SWEEP_INTERVAL_S),
        "guardrail": Periodic("guardrail check", guardrail.check, settings.guardrail_check_s),
        "webhooks": WebhookSender(
            sessionmaker=runtime.sessionmaker,
            clock=runtime.clock,
            retry=WebhookRetryPolicy(),
            concurrency=settings.webhook_concurrency,
            timeout_s=settings.webhook_timeout_s,
            allow_private=settings.webhook_allow_private,
            ssl_cert_file=settings.ssl_cert_file,
        ),
    }


# -- transports -------------------------------------------------------------------------------


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


def credentials_source(settings: Settings) -> Callable[[], str | None]:
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
                ses_relay=is_ses_smtp_host(settings.smtp_host),
            )
        case TransportKind.OUTBOX:
            return OutboxTransport(settings.outbox_dir)
