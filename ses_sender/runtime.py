"""What every role of the process shares, built once from the settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ses_sender.auth import ApiKeys
from ses_sender.clock import Clock, SystemClock
from ses_sender.config import Settings, TransportKind
from ses_sender.db.engine import create_engine, create_sessionmaker
from ses_sender.ses_events import service as ses_events_service
from ses_sender.ses_events.ingester import Ingester
from ses_sender.ses_events.sns import CertificateStore, HttpsFetcher, SnsVerifier
from ses_sender.ses_events.topics import TrustedTopics
from ses_sender.suppression.service import SoftBounceRule
from ses_sender.tracking import repository as tracking_repository
from ses_sender.tracking.tokens import TrackingTokens

TRACKING_SECRET_NAME = "tracking"  # noqa: S105 - the name of a secret, not one


@dataclass(frozen=True)
class TransportChoice:
    kind: TransportKind
    why: str  # said at start-up and in /health


@dataclass
class Runtime:
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
    # Set by the API after a commit that queued mail; an in-process worker waits on it.
    work_available: asyncio.Event = field(default_factory=asyncio.Event)

    def wake_worker(self) -> None:
        self.work_available.set()


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
    ses_events = Ingester(sessionmaker, soft_bounces=soft_bounces)

    async def recorded_topics() -> frozenset[str]:
        async with sessionmaker() as session:
            return await ses_events_service.trusted_topics(session)

    topics = TrustedTopics(settings.sns_topic_arns, recorded_topics)
    try:
        yield Runtime(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            clock=clock,
            api_keys=ApiKeys(settings.api_keys),
            tokens=TrackingTokens(await _tracking_secret(settings, sessionmaker, clock)),
            transport=transport,
            sns=SnsVerifier(
                certificates or CertificateStore(fetcher.get), clock=clock.now, topics=topics
            ),
            topics=topics,
            fetcher=fetcher,
            ses_events=ses_events,
            soft_bounces=soft_bounces,
        )
    finally:
        await ses_events.close()
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
