"""Click redirect benchmark: latency of `GET /v1/c/<token>` at a steady rate, one API process.

    make bench-redirect                # or: .venv/bin/python -m bench.redirect --help

The bench

1. creates a SQLite database in a temporary directory and runs `ses-sender migrate` on it;
2. starts one `ses-sender api` process on a free loopback port (a fixed TRACKING_SECRET, so
   this process can make the tokens a worker would put in the emails);
3. queues `--recipients` recipients of one email with `--links` links through
   `POST /v1/messages`, and makes each recipient's click tokens; with `--personal`, the email
   is a template whose every link leads to a URL of the recipient's own (rendered from their
   data), so every click reads the recipient's row and renders the URL again;
4. from this process (the load generator), clicks at `--rate` clicks per second, open loop, for
   `--seconds` seconds, on random links of random recipients: each request is started at its
   scheduled time whatever the earlier ones are doing, and its latency runs from that time to
   the answer, so a stalled server shows in the figures instead of slowing the load down;
   every answer must be a 302 to the link's target;
5. waits until every click is recorded in the database (the clicks are recorded after their
   answer, in batches), and reads the API process's CPU time from before the first click to
   then.

Only loopback addresses are contacted; the process and files are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.ingest import (
    API_KEY,
    SES_SENDER,
    BenchError,
    _exit_on_sigterm,
    api_process,
    positive,
    service_environment,
)
from bench.sns_ingest import cpu_seconds
from ses_sender.tracking.links import fingerprint
from ses_sender.tracking.tokens import ClickToken, TrackingTokens

TRACKING_SECRET = "bench-redirect-tracking-secret-0123"  # noqa: S105 - a bench's own
PUBLIC_BASE_URL = "https://mail.example.com"
RECORD_TIMEOUT_S = 120.0
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)


@dataclass(frozen=True)
class Outcome:
    clicks: int
    seconds: float  # from the first scheduled click to the last answer
    latencies_ms: list[float]
    api_cpu_s: float
    recorded_after_s: float  # from the last answer until every click was in the database

    @property
    def rate(self) -> float:
        return self.clicks / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if not SES_SENDER.exists():
            raise BenchError(f"{SES_SENDER} not found: install the project (make test or pip -e .)")
        with tempfile.TemporaryDirectory(prefix="ses-sender-bench-redirect-") as directory:
            outcome = run(Path(directory), args)
    except BenchError as error:
        print(f"bench.redirect: {error}", file=sys.stderr)
        return 1
    print(format_report(outcome, args.rate, personal=args.personal))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.redirect",
        description="Latency of the click redirect of one `ses-sender api` process at a steady "
        "rate of clicks.",
    )
    parser.add_argument("--rate", type=positive, default=1_000, help="clicks per second")
    parser.add_argument("--seconds", type=positive, default=10, help="how long to click")
    parser.add_argument("--recipients", type=positive, default=1_000)
    parser.add_argument("--links", type=positive, default=5, help="links in the email")
    parser.add_argument(
        "--personal",
        action="store_true",
        help="a templated email whose links lead to each recipient's own URL",
    )
    return parser


def run(workdir: Path, args: argparse.Namespace) -> Outcome:
    database = workdir / "bench.db"
    environment = {
        **service_environment(f"sqlite:///{database}", workdir, max_recipients=args.recipients),
        "TRACKING_SECRET": TRACKING_SECRET,
        "SERVER_HOST": PUBLIC_BASE_URL,
    }
    _migrate(environment, workdir)
    with api_process(environment, workdir) as server:
        return asyncio.run(_click(server.base_url, server.process.pid, database, args))


def _migrate(environment: dict[str, str], workdir: Path) -> None:
    done = subprocess.run(
        [str(SES_SENDER), "migrate"], env=environment, cwd=workdir, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"ses-sender migrate failed: {done.stderr.decode()[-2000:]}")


async def _click(base_url: str, api_pid: int, database: Path, args: argparse.Namespace) -> Outcome:
    code = "?for={{ code }}" if args.personal else ""
    html = "".join(
        f'<p><a href="https://shop.example/item/{i}{code}">item {i}</a></p>'
        for i in range(args.links)
    )
    request_ids, content_id = await _queue(base_url, args.recipients, html, args.personal)
    tokens = TrackingTokens(TRACKING_SECRET)
    chooser = random.Random(7)
    total = args.rate * args.seconds
    rate = args.rate
    plan = []
    for _ in range(total):
        recipient = chooser.randrange(len(request_ids))
        position = chooser.randrange(args.links)
        url = f"https://shop.example/item/{position}"
        url += f"?for=c{recipient}" if args.personal else ""
        click = ClickToken(request_ids[recipient], content_id, position, fingerprint(url))
        plan.append((f"/v1/c/{tokens.for_click(click)}", url))
    # Idle connections let go before the server's keep-alive (uvicorn: 5 s) ends them, so a
    # slow rate never reuses one the server is closing.
    connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=2)
    async with aiohttp.ClientSession(
        base_url, connector=connector, headers={"user-agent": USER_AGENT}
    ) as session:
        # Warm up: the content's links are read once, connections are opened.
        await asyncio.gather(*(_get(session, path, location) for path, location in plan[:200]))
        cpu_before = cpu_seconds(api_pid)
        latencies: list[float] = []
        start = time.perf_counter()

        async def one(index: int) -> None:
            scheduled = start + index / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            path, location = plan[index]
            await _get(session, path, location)
            latencies.append((time.perf_counter() - scheduled) * 1000)

        # The load generator's own collector must not count as the server's latency: with the
        # run's requests all pending, one full collection here stalled every answer it was
        # reading for up to 100 ms (p99 52-81 ms, against 11-19 ms with it off, same server).
        gc.disable()
        try:
            await asyncio.gather(*(one(index) for index in range(total)))
        finally:
            gc.enable()
        elapsed = time.perf_counter() - start
    answered = time.perf_counter()
    await _wait_recorded(database, total + 200)
    recorded_after = time.perf_counter() - answered
    # Read once every click is recorded: the recording that trails the answers counts too.
    api_cpu = cpu_seconds(api_pid) - cpu_before
    return Outcome(total, elapsed, latencies, api_cpu, recorded_after)


async def _queue(base_url: str, count: int, html: str, personal: bool) -> tuple[list[int], int]:
    addresses = [f"user{index}@example.com" for index in range(count)]
    message: dict[str, object] = {"topicId": "bench-redirect", "subject": "Benchmark"}
    if personal:
        message["recipients"] = [
            {"email": address, "data": {"code": f"c{index}"}}
            for index, address in enumerate(addresses)
        ]
    else:
        message["emails"] = addresses
    message["content"] = html
    async with (
        aiohttp.ClientSession(base_url, headers={"x-api-key": API_KEY}) as session,
        session.post("/v1/messages", json={"messages": [message]}) as response,
    ):
        if response.status != 200:
            raise BenchError(f"POST /v1/messages answered {response.status}")
        accepted = json.loads(await response.read())["messages"][0]
    return accepted["requestIds"], accepted["contentId"]


async def _get(session: aiohttp.ClientSession, path: str, location: str) -> None:
    async with session.get(path, allow_redirects=False) as response:
        await response.read()
        if response.status != 302 or response.headers.get("location") != location:
            raise BenchError(f"{path}: answered {response.status}, not a 302 to {location}")


async def _wait_recorded(database: Path, expected: int) -> None:
    deadline = time.monotonic() + RECORD_TIMEOUT_S
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as connection:
            (count,) = connection.execute(
                "SELECT count(*) FROM email_results WHERE status = 'Click'"
            ).fetchone()
        if count >= expected:
            return
        await asyncio.sleep(0.2)
    raise BenchError(f"only {count} of {expected} clicks recorded after {RECORD_TIMEOUT_S:g} s")


def format_report(outcome: Outcome, rate: int, *, personal: bool) -> str:
    links = "each recipient's own links" if personal else "links shared by all recipients"
    return "\n".join(
        [
            f"click redirect, one `ses-sender api` process (SQLite), {rate} clicks/s asked, "
            f"{links}",
            f"clicks          {outcome.clicks} in {outcome.seconds:.1f} s "
            f"({outcome.rate:.0f}/s achieved)",
            f"latency p50     {outcome.percentile(0.50):.2f} ms",
            f"latency p99     {outcome.percentile(0.99):.2f} ms",
            f"latency max     {max(outcome.latencies_ms):.2f} ms",
            f"latency mean    {statistics.fmean(outcome.latencies_ms):.2f} ms",
            f"API CPU         {outcome.api_cpu_s / outcome.clicks * 1000:.3f} ms per click "
            "(answer and recording)",
            f"all recorded    {outcome.recorded_after_s:.2f} s after the last answer",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
