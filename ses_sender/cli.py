"""`ses-sender`: the command line. Arguments, settings and exit codes live here; the object
graph is built in `composition.py`, and processes run in `process.py`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from ses_sender.aws_setup import commands as aws_commands
from ses_sender.composition import credentials_source
from ses_sender.config import Settings, SettingsError
from ses_sender.db.migrate import DatabaseUnreachable, SchemaOutOfDate, upgrade_to_head_async
from ses_sender.observability import configure_logging
from ses_sender.process import Role, run_process
from ses_sender.stats import commands as stats_commands

log = logging.getLogger("ses_sender")

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
        role = COMMANDS[args.command][0]
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
    for name, (_role, summary) in COMMANDS.items():
        commands.add_parser(name, help=summary, description=summary)
    migrate = "Bring the database schema to the latest version (safe to run again)."
    commands.add_parser("migrate", help=migrate, description=migrate)
    _add_aws_parsers(commands)
    _add_stats_parsers(commands)
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
