"""The bare SES client: the worker's own HTTP client (aiohttp + our SigV4 signer, through
`SesTransport`) sending already-composed emails to the SES stub with no database, no pacing and
no recording, as fast as it can. `bench/throughput.py` runs it beside the worker, in the same
run, and reports the worker's emails/s as a share of this: what the engine costs over the
client it is built on.

    .venv/bin/python -m bench.bare_client --url http://127.0.0.1:PORT --emails 20000

Prints one JSON object: emails, seconds, emails_per_s, cpu_ms_per_email. The window runs from
the first answer to the last, so start-up is left out, as in the worker's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import Sequence

from ses_sender.composer.service import EmailComposer
from ses_sender.delivery.emails import ContentParts, QueuedEmail
from ses_sender.tracking.tokens import TrackingTokens
from ses_sender.transports.ses import SesTransport

DEFAULT_IN_FLIGHT = 64


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_client", description=__doc__)
    parser.add_argument("--url", required=True, help="the SES endpoint (the stub)")
    parser.add_argument("--emails", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=DEFAULT_IN_FLIGHT)
    parser.add_argument("--html", default="<p>Hello</p>", help="the content of every email")
    args = parser.parse_args(argv)
    result = asyncio.run(_send(args.url, args.emails, args.in_flight, args.html))
    print(json.dumps(result))
    return 0


async def _send(url: str, emails: int, in_flight: int, html: str) -> dict[str, float]:
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    transport = SesTransport(
        "us-east-1",
        access_key_id="bench",
        secret_access_key="bench",  # noqa: S106 - the stub checks no signature
        endpoint_url=url,
        max_connections=in_flight,
    )
    await transport.start()
    composer = EmailComposer(
        sender="News <news@example.com>",
        public_base_url="https://mail.example.com",
        tokens=TrackingTokens("bench-tracking-secret-0123456789"),
        track_clicks=False,
    )
    content = ContentParts("This month at Example", html)
    # Composed beforehand: the bare client measures the HTTP client alone.
    outgoing = [
        composer.compose(
            QueuedEmail(i, "bench", f"u{i}@example.com", f"u{i}@example.com", 1, 1, 0), content
        )
        for i in range(1, emails + 1)
    ]
    queue = iter(outgoing)
    answered: list[float] = []

    async def sender() -> None:
        for email in queue:
            await transport.send(email)
            answered.append(time.monotonic())

    cpu_before = _cpu_s()
    try:
        await asyncio.gather(*(sender() for _ in range(in_flight)))
    finally:
        await transport.close()
    cpu_s = _cpu_s() - cpu_before
    seconds = answered[-1] - answered[0]
    return {
        "emails": emails,
        "seconds": seconds,
        "emails_per_s": (len(answered) - 1) / seconds,
        "cpu_ms_per_email": cpu_s * 1000 / emails,
    }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main())
