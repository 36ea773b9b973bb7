"""`ses-sender`: the command line. Arguments, settings and exit codes live here; the object
graph is built in `composition.py`, and processes run in `process.py`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from ses_sender.client import commands as client_commands
from ses_sender.client.recipients import InputProblem
from ses_sender.client.sending import Campaign
from ses_sender.client.service_api import ServiceApi, ServiceProblem
from ses_sender.config import Settings, SettingsError

log = logging.getLogger("ses_sender")

COMMANDS = {
    "serve": "Run the HTTP API and a delivery worker in one process (migrates an SQLite database).",
    "api": "Run the HTTP API only (scale out behind a load balancer).",
    "worker": "Run a delivery worker only (claims and sends queued email).",
}


# Where `send` and `status` find the service when --url and --api-key are not given; without
# them either, the local service this directory's settings describe.
URL_ENV = "SES_SENDER_URL"
API_KEY_ENV = "SES_SENDER_API_KEY"
DEFAULT_CHUNK_SIZE = 10_000
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by SIGINT


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("send", "status"):
        return _client(args)
    return _service(args)


def _service(args: argparse.Namespace) -> int:
    """The service's own commands. Their modules (the web app, the engine, the AWS SDK) take
    seconds of CPU to import, which `send` and `status`, a person's client, do without."""
    from ses_sender.aws_setup import commands as aws_commands
    from ses_sender.composition import credentials_source
    from ses_sender.db.migrate import DatabaseUnreachable, SchemaOutOfDate, migrate_database
    from ses_sender.observability import configure_logging
    from ses_sender.process import Role, run_process
    from ses_sender.stats import commands as stats_commands

    roles = {"serve": Role.API | Role.WORKER, "api": Role.API, "worker": Role.WORKER}
    try:
        settings = Settings()
    except ValidationError as error:
        return _refuse(describe_settings_error(error))
    configure_logging(settings)
    try:
        if args.command == "migrate":
            asyncio.run(migrate_database(settings.sqlalchemy_url))
            log.info("database is at the latest migration")
            return 0
        if args.command == "setup-aws":
            return asyncio.run(
                aws_commands.setup_aws(
                    settings,
                    endpoint=args.endpoint,
                    dry_run=args.dry_run,
                    credentials_source=credentials_source(settings),
                )
            )
        if args.command == "stats":
            return asyncio.run(
                stats_commands.verify(settings.sqlalchemy_url, args.topic, out=sys.stdout)
            )
        if args.command == "doctor":
            return asyncio.run(
                aws_commands.doctor(settings, credentials_source=credentials_source(settings))
            )
        role = roles[args.command]
        # asyncio's own loop, not uvloop: its millisecond timers wake sends late for the pacer
        # (docs/decisions/0009-asyncio-loop-not-uvloop.md).
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
    for name, summary in COMMANDS.items():
        commands.add_parser(name, help=summary, description=summary)
    migrate = "Bring the database schema to the latest version (safe to run again)."
    commands.add_parser("migrate", help=migrate, description=migrate)
    _add_aws_parsers(commands)
    _add_stats_parsers(commands)
    _add_client_parsers(commands)
    return parser


def _add_stats_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = commands.add_parser(
        "stats", help="Check the counters behind the stats.", description="Stats commands."
    )
    actions = stats.add_subparsers(dest="stats_command", required=True, metavar="ACTION")
    verify = (
        "Recount every counter (of one topic, or all) from the requests and events, and print "
        "each that differs from the one kept; exit 1 if any does."
    )
    parser = actions.add_parser("verify", help=verify, description=verify)
    parser.add_argument("topic", nargs="?", default=None, help="a topic id (default: every one)")


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


def _add_client_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser(
        "send",
        help="Queue one email to every address of a CSV file, in chunks, resumably.",
        description="Queue one email to every address in a column of a CSV file (of any "
        "size), through the service's API, in chunks. The whole file is checked first: a bad "
        "line stops the run before anything is sent. Interrupted, run the same command again: "
        "each chunk carries an idempotency key, so what is queued already is not queued twice.",
    )
    send.add_argument("--topic", required=True, help="the topic id")
    send.add_argument("--subject", required=True, help="the subject line")
    send.add_argument("--html", required=True, type=Path, metavar="FILE", help="the HTML body")
    send.add_argument(
        "--text",
        type=Path,
        metavar="FILE",
        help="the plain-text part (default: derived from the HTML by the service)",
    )
    send.add_argument(
        "--to-csv", required=True, type=Path, metavar="FILE", help="UTF-8 CSV, first row names"
    )
    send.add_argument("--column", default="email", help="the column of addresses (default: email)")
    send.add_argument(
        "--scheduled-at",
        metavar="TIME",
        help="RFC 3339 with an offset, e.g. 2030-12-25T10:00:00+09:00 (default: now)",
    )
    send.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=DEFAULT_CHUNK_SIZE,
        help=f"addresses per request (default: {DEFAULT_CHUNK_SIZE:,}; at most the service's "
        "MAX_RECIPIENTS_PER_REQUEST). Keep it the same when resuming",
    )
    _add_service_options(send)
    status = commands.add_parser(
        "status",
        help="Show a topic's progress and funnel.",
        description="Show a topic's progress (queued, sent, failed, stopped) and its funnel "
        "(delivered, opened, clicked, bounced, complained, unsubscribed).",
    )
    status.add_argument("topic", help="the topic id")
    status.add_argument("--watch", action="store_true", help="redraw until nothing is left to send")
    status.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="--watch redraws this often"
    )
    _add_service_options(status)


def _add_service_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help=f"the service's base URL (default: ${URL_ENV}, else this machine's SERVER_PORT)",
    )
    parser.add_argument(
        "--api-key", help=f"an API key (default: ${API_KEY_ENV}, else the first of API_KEY)"
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _client(args: argparse.Namespace) -> int:
    """`send` and `status`: 0 done, 1 the service failed or refused, 2 bad input, 130
    interrupted."""
    try:
        url, api_key = _service_address(args.url, args.api_key)
    except ValidationError as error:
        return _refuse(describe_settings_error(error))
    console = Console(stderr=False)
    api = ServiceApi(url, api_key)
    try:
        if args.command == "send":
            client_commands.send_campaign(_campaign(args), api, console)
        else:
            client_commands.show_status(
                api, args.topic, console, watch=args.watch, interval_s=args.interval
            )
    except InputProblem as error:
        return _refuse(str(error))
    except ServiceProblem as error:
        print(f"ses-sender: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0 if args.command == "status" else EXIT_INTERRUPTED
    finally:
        api.close()
    return 0


def _service_address(url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """--url and --api-key, else their variables, else the local service's settings (read
    only when needed: a remote service does not need this machine's settings to be valid)."""
    url = url or os.environ.get(URL_ENV) or None
    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    if url is None or api_key is None:
        local = Settings()
        url = url or f"http://127.0.0.1:{local.server_port}"
        api_key = api_key or next(iter(local.api_keys), None)
    return url, api_key


def _campaign(args: argparse.Namespace) -> Campaign:
    return Campaign(
        topic_id=args.topic,
        subject=args.subject,
        html=_read_text("--html", args.html),
        text=None if args.text is None else _read_text("--text", args.text),
        scheduled_at=args.scheduled_at,
        recipients=args.to_csv,
        column=args.column,
        chunk_size=args.chunk_size,
    )


def _read_text(option: str, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputProblem(
            f"{option} {path}: {getattr(error, 'strerror', None) or error}"
        ) from None


def _refuse(message: str) -> int:
    print(f"ses-sender: {message}", file=sys.stderr)
    return 2


def describe_settings_error(error: ValidationError) -> str:
    """The variable and what is wrong with it, never its value: a bad TRACKING_SECRET or a
    DATABASE_URL with its password would end up in the logs."""
    first = error.errors()[0]
    variable = ".".join(str(part) for part in first["loc"]) or "settings"
    return f"{variable}: {first['msg'].removeprefix('Value error, ')}"
