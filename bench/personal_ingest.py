"""Personal ingest benchmark: recipients accepted per second by `POST /v1/messages` when each
recipient brings its own template data, against plain addresses in the same run.

    make bench-personal-ingest         # or: .venv/bin/python -m bench.personal_ingest --help

One message of N recipients (default 100,000), each `{"email", "data"}` with five fields, and
a subject and HTML that read them; then the same recipients as plain `emails` with the seed's
fields only. Each on a fresh PostgreSQL database and a fresh `ses-sender api` process, as
`bench.ingest` runs them; the report gives both rates, their ratio, and whether the personal
rate reaches the target.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
from collections.abc import Sequence

from bench.ingest import (
    DEFAULT_POSTGRES,
    POSTGRES_ENV,
    SES_SENDER,
    BenchError,
    Cell,
    _exit_on_sigterm,
    _require_loopback,
    format_table,
    positive,
    request_body,
    run,
)

DEFAULT_RECIPIENTS = 100_000
DEFAULT_REPEAT = 3
TARGET_RECIPIENTS_PER_S = 30_000


def personal_body(size: int) -> bytes:
    message = {
        "topicId": "bench-personal-ingest",
        "recipients": [
            {
                "email": f"user{index}@example.com",
                "data": {
                    "name": f"User {index}",
                    "order": 100_000 + index,
                    "city": "Seoul",
                    "plan": "pro" if index % 2 else "free",
                    "points": index % 1000,
                },
            }
            for index in range(size)
        ],
        "data": {"shop": "Example"},
        "subject": "{{ shop }}: order {{ order }} for {{ name }}",
        "content": "<h1>Hello {{ name }}</h1><p>Your {{ plan }} plan in {{ city }} has "
        "{{ points }} points.</p>",
    }
    return json.dumps({"messages": [message]}).encode()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # clean up on a plain `kill` too
    try:
        _require_loopback(args.postgres)
        if not SES_SENDER.exists():
            raise BenchError(f"{SES_SENDER} not found: install the project (make test or pip -e .)")
        sizes = [args.recipients]
        [personal] = run(["postgresql"], sizes, args.repeat, args.postgres, personal_body)
        [plain] = run(["postgresql"], sizes, args.repeat, args.postgres, request_body)
    except BenchError as error:
        print(f"bench.personal_ingest: {error}", file=sys.stderr)
        return 1
    print(format_report(personal, plain, args.repeat))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.personal_ingest",
        description="Recipients/s accepted with five data fields each, and plain, on PostgreSQL.",
    )
    parser.add_argument(
        "--recipients",
        type=positive,
        default=DEFAULT_RECIPIENTS,
        help=f"recipients in the one message (default: {DEFAULT_RECIPIENTS})",
    )
    parser.add_argument(
        "--repeat",
        type=positive,
        default=DEFAULT_REPEAT,
        help=f"timed requests, after one warm-up (default: {DEFAULT_REPEAT})",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES),
        metavar="DSN",
        help="an admin connection on a loopback server; the bench creates and drops its own "
        f"databases there (default: ${POSTGRES_ENV} or {DEFAULT_POSTGRES})",
    )
    return parser


def format_report(personal: Cell, plain: Cell, repeat: int) -> str:
    personal_rate = statistics.median(personal.rates())
    plain_rate = statistics.median(plain.rates())
    verdict = "meets" if personal_rate >= TARGET_RECIPIENTS_PER_S else "falls short of"
    return "\n".join(
        [
            "With five data fields per recipient (first row), then plain addresses:",
            "",
            format_table([personal, plain], repeat),
            "",
            f"personal/plain: {personal_rate / plain_rate:.0%}; the personal rate "
            f"{personal_rate:,.0f} recipients/s {verdict} the target of "
            f"{TARGET_RECIPIENTS_PER_S:,}/s",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
