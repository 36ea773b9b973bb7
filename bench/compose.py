"""Compose benchmark: the worker's CPU per email to turn a claimed row into the email it sends,
for a content sent as given and for the same content templated from five data fields per
recipient, alternated in one process so the ratio holds on a busy machine.

    make bench-compose                 # or: .venv/bin/python -m bench.compose --help

Everything else a send costs (claim, pacing, the SES request, recording) is the same for both,
so `bench.throughput --templated` measures the whole worker; this isolates the step templating
changes, in one process and without a database.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

import orjson

from bench.ingest import positive
from bench.throughput import CONTENT_HTML, TEMPLATED_HTML, TEMPLATED_SUBJECT
from ses_sender.composer.service import EmailComposer
from ses_sender.delivery.emails import ContentParts, QueuedEmail
from ses_sender.tracking.tokens import TrackingTokens

DEFAULT_EMAILS = 20_000
DEFAULT_ROUNDS = 5
PLAIN = ContentParts(subject="This month at Example", html=CONTENT_HTML)
TEMPLATED = ContentParts(
    subject=TEMPLATED_SUBJECT, html=TEMPLATED_HTML, templated=True, data='{"shop": "Example"}'
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    composer = EmailComposer(
        sender="News <news@example.com>",
        public_base_url="https://mail.example.com",
        tokens=TrackingTokens("bench-tracking-secret-0123456789"),
        track_clicks=False,  # templating alone; bench.throughput --clicks measures tracking
    )
    plain_rows = queued(args.emails, content_id=1, templated=False)
    templated_rows = queued(args.emails, content_id=2, templated=True)
    plain: list[float] = []
    templated: list[float] = []
    for _ in range(args.rounds):
        plain.append(cpu_ms_per_email(composer, plain_rows, PLAIN))
        templated.append(cpu_ms_per_email(composer, templated_rows, TEMPLATED))
    print(format_report(args, plain, templated))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compose",
        description="CPU per email of composing, plain and templated, in one process.",
    )
    parser.add_argument(
        "--emails",
        type=positive,
        default=DEFAULT_EMAILS,
        help=f"emails per round and mode (default: {DEFAULT_EMAILS})",
    )
    parser.add_argument(
        "--rounds",
        type=positive,
        default=DEFAULT_ROUNDS,
        help=f"alternating rounds of each mode (default: {DEFAULT_ROUNDS})",
    )
    return parser


def queued(count: int, *, content_id: int, templated: bool) -> list[QueuedEmail]:
    return [
        QueuedEmail(
            request_id=n,
            topic_id="bench-compose",
            to=f"user{n}@example.com",
            recipient_key=f"user{n}@example.com",
            lease_token=1,
            content_id=content_id,
            attempts=1,
            data=orjson.dumps(
                {
                    "name": f"User {n}",
                    "order": n,
                    "city": "Seoul",
                    "plan": "pro",
                    "points": n % 1000,
                }
            ).decode()
            if templated
            else None,
        )
        for n in range(1, count + 1)
    ]


def cpu_ms_per_email(
    composer: EmailComposer, rows: list[QueuedEmail], content: ContentParts
) -> float:
    started = time.process_time()
    for row in rows:
        composer.compose(row, content)
    return (time.process_time() - started) * 1000 / len(rows)


def format_report(args: argparse.Namespace, plain: list[float], templated: list[float]) -> str:
    plain_ms = statistics.median(plain)
    templated_ms = statistics.median(templated)
    return "\n".join(
        [
            f"Composing {args.emails:,} emails per round, {args.rounds} alternating rounds; "
            "CPU ms per email, median (min-max)",
            "",
            f"plain      {plain_ms:.4f} ({min(plain):.4f}-{max(plain):.4f})",
            f"templated  {templated_ms:.4f} ({min(templated):.4f}-{max(templated):.4f})",
            "",
            f"templating adds {templated_ms - plain_ms:.4f} ms of CPU per email "
            f"({templated_ms / plain_ms:.2f}x the plain compose)",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
