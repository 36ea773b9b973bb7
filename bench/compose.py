"""Compose benchmark: the worker's CPU per email to turn a claimed row into the email it sends,
for a content sent as given (its eight links tracked or not), for the same content templated
from five data fields per recipient, and for that template with its links tracked and one more
link that differs per recipient (its URL rendered from the recipient's data), and for the
template with its eight links tracked (what `bench.throughput --templated --clicks` sends),
alternated in one process so the ratios hold on a busy machine.

    make bench-compose                 # or: .venv/bin/python -m bench.compose --help

Everything else a send costs (claim, pacing, the SES request, recording) is the same for both,
so `bench.throughput --templated` measures the whole worker; this isolates the step templating
changes, in one process and without a database.
"""

from __future__ import annotations

import argparse
import dataclasses
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
PLAIN = ContentParts(subject="This month at Example", html=CONTENT_HTML, track_clicks=False)
TEMPLATED = ContentParts(
    subject=TEMPLATED_SUBJECT,
    html=TEMPLATED_HTML,
    templated=True,
    data='{"shop": "Example"}',
    track_clicks=False,
)
PLAIN_TRACKED = dataclasses.replace(PLAIN, track_clicks=True)
# The template's eight story links tracked, and a ninth that leads to each recipient's own page.
TRACKED_TEMPLATED = dataclasses.replace(
    TEMPLATED,
    html=TEMPLATED_HTML.replace(
        "</h1>", '</h1><p><a href="https://example.com/members/{{ order }}">Your page</a></p>'
    ),
    track_clicks=True,
)
# The content `bench.throughput --templated --clicks` sends: its eight links tracked, no more.
TEMPLATED_TRACKED_AS_GIVEN = dataclasses.replace(TEMPLATED, track_clicks=True)
MODES = (
    "plain",
    "plain, tracked",
    "templated",
    "templated, tracked",
    "templated, 8 tracked",
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    composer = EmailComposer(
        sender="News <news@example.com>",
        public_base_url="https://mail.example.com",
        tokens=TrackingTokens("bench-tracking-secret-0123456789"),
        track_clicks=False,  # each content says
    )
    runs = [
        (queued(args.emails, content_id=1, templated=False), PLAIN),
        (queued(args.emails, content_id=4, templated=False), PLAIN_TRACKED),
        (queued(args.emails, content_id=2, templated=True), TEMPLATED),
        (queued(args.emails, content_id=3, templated=True), TRACKED_TEMPLATED),
        (queued(args.emails, content_id=5, templated=True), TEMPLATED_TRACKED_AS_GIVEN),
    ]
    figures: list[list[float]] = [[] for _ in runs]
    for _ in range(args.rounds):
        for (rows, content), times in zip(runs, figures, strict=True):
            times.append(cpu_ms_per_email(composer, rows, content))
    print(format_report(args, figures))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compose",
        description="CPU per email of composing, plain, templated and templated with its links "
        "tracked, in one process.",
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


def format_report(args: argparse.Namespace, figures: list[list[float]]) -> str:
    plain_ms = statistics.median(figures[0])
    lines = [
        f"Composing {args.emails:,} emails per round and mode, {args.rounds} alternating rounds; "
        "CPU ms per email, median (min-max), and what it adds to the plain compose",
        "",
    ]
    for mode, times in zip(MODES, figures, strict=True):
        median = statistics.median(times)
        lines.append(
            f"{mode:<20} {median:.4f} ({min(times):.4f}-{max(times):.4f})  "
            f"+{median - plain_ms:.4f} ms ({median / plain_ms:.2f}x)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
