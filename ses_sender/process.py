"""Running a process's roles (the HTTP API, the delivery worker, or both) until a signal stops
them, and what the process exits with."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import logging
import signal
from collections.abc import Iterator

import sentry_sdk
import uvicorn
from fastapi import FastAPI

from ses_sender.composition import (
    Runtime,
    build_account_watch,
    build_outage_watch,
    build_pacer,
    build_pause_gate,
    build_side_tasks,
    build_worker,
    choose_transport,
    create_app,
    create_metrics_app,
    open_runtime,
    start_transport,
)
from ses_sender.config import Settings
from ses_sender.db.migrate import ensure_schema
from ses_sender.delivery.outage import NoOutageWatch, OutageWatch
from ses_sender.delivery.recorder import OutcomesNotRecorded
from ses_sender.observability import flush_sentry, init_sentry
from ses_sender.ses_events.topics import TopicsUnavailable, TrustedTopics
from ses_sender.tasks import Periodic, SideTask
from ses_sender.transports.base import Transport
from ses_sender.transports.ses import SesTransport
from ses_sender.web.server import server_config

log = logging.getLogger("ses_sender")


class Role(enum.Flag):
    API = enum.auto()
    WORKER = enum.auto()


async def run_process(settings: Settings, role: Role) -> int:
    """Run until SIGTERM or SIGINT; 0 when everything stopped cleanly, 1 when a part failed."""
    init_sentry(settings)
    try:
        choice = choose_transport(settings, sending=Role.WORKER in role)
        await ensure_schema(
            settings.sqlalchemy_url, migrate_sqlite=Role.API in role and Role.WORKER in role
        )
        async with open_runtime(settings, transport=choice) as runtime:
            log.info("sending through %s: %s", choice.kind, choice.why)
            if settings.dead_links is not None:
                log.warning("%s", settings.dead_links)
            return await _run_roles(runtime, role)
    finally:
        flush_sentry()


async def _run_roles(runtime: Runtime, role: Role) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: dict[str, asyncio.Task[None]] = {}
    parts: list[SideTask] = []
    servers: list[_Server] = []
    transport: Transport | None = None
    try:
        if Role.WORKER in role:
            transport = await start_transport(runtime.settings, runtime.transport)
            parts = await _start_worker(runtime, transport, tasks)
        if Role.API in role:
            await _announce_trusted_topics(runtime.topics)
            servers.append(_server(create_app(runtime), runtime.settings.server_port, runtime))
            tasks["api"] = asyncio.create_task(servers[-1].serve(), name="api")
        if runtime.settings.metrics_port is not None:
            port = runtime.settings.metrics_port
            servers.append(_server(create_metrics_app(runtime), port, runtime))
            tasks["metrics"] = asyncio.create_task(servers[-1].serve(), name="metrics")
            log.info("serving /metrics on port %d", port)
        _spare_the_collector_start_up()
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([stopping, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        log.info("stopping")
        for server in servers:
            server.should_exit = True
        for part in parts:
            part.stop()
        return await _exit_code(tasks)
    finally:
        if transport is not None:
            await transport.close()


async def _start_worker(
    runtime: Runtime, transport: Transport, tasks: dict[str, asyncio.Task[None]]
) -> list[SideTask]:
    """The worker and what runs beside it, started; the parts to stop."""
    pacer = build_pacer(runtime)
    parts: dict[str, SideTask] = build_side_tasks(runtime)
    pauses = build_pause_gate(runtime)
    outage: OutageWatch = NoOutageWatch()
    if isinstance(transport, SesTransport):
        account = build_account_watch(runtime, transport, pacer)
        await account.check()  # the account's rate is known before the first send
        parts["account"] = Periodic(
            "SES account check", account.check, runtime.settings.account_check_s
        )
        parts["ses-outage-probe"] = outage = build_outage_watch(runtime, transport, pauses)
    worker = build_worker(runtime, transport, pacer, pauses=pauses, outage=outage)
    tasks["worker"] = asyncio.create_task(worker.run(), name="worker")
    for name, part in parts.items():
        tasks[name] = asyncio.create_task(part.run(), name=name)
    return [worker, *parts.values()]


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
    collector's sight: it lives as long as the process anyway, and a full collection that scans
    it holds up a send that left the pacer: a late send can draw a throttle
    (docs/decisions/0008-gc-freeze-at-start-up.md)."""
    gc.collect()
    gc.freeze()


async def _exit_code(tasks: dict[str, asyncio.Task[None]]) -> int:
    code = 0
    for name, task in tasks.items():
        try:
            await task
        except OutcomesNotRecorded as error:
            log.error("the %s stopped: %s", name, error)  # says it all: no traceback
            sentry_sdk.capture_exception(error)
            code = 1
        except (Exception, SystemExit) as error:
            log.error("the %s stopped with an error: %r", name, error, exc_info=error)
            sentry_sdk.capture_exception(error)
            code = 1
    return code


def _server(app: FastAPI, port: int, runtime: Runtime) -> _Server:
    # The client's address is the app's to work out (FORWARDED_ALLOW_IPS), not uvicorn's.
    return _Server(
        server_config(app, host=runtime.settings.server_bind, port=port, proxy_headers=False)
    )


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: this process stops API and worker together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
