"""Pacing benchmark: the share of the rate 1, 2 and 4 `ses-sender worker` processes reach
together, and the throttles they draw, against an SES stand-in enforcing a strict window.

    make bench-pacing                  # or: .venv/bin/python -m bench.pacing --help

For each number of workers: a fresh PostgreSQL database; the SES stub (`tests/support/ses_stub.py`,
its own process) answering after `--latency` seconds and refusing with 429
TooManyRequestsException any send that would put more than `--rate` in the last second (a
sliding window, as SES counts); the workers started with EMAIL_RATE = `--rate` and waited for
until each is up; then `--rate` x `--seconds` emails queued at once. When SES has accepted them
all, the stub's record of every request gives:

- share of the rate: accepted sends per second from the first to the last, over `--rate`;
- the most accepted in any one-second window (at most the rate, if the pacing holds);
- throttles: 429s the stub answered (each is requeued, and backs the shared rate off a while);
- the most requests the stub had open at once (in flight follows the rate and the latency).

Only loopback addresses are contacted; the processes and the temporary databases are removed
even when a run fails or is interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.ingest import (
    DEFAULT_POSTGRES,
    POSTGRES_ENV,
    SES_SENDER,
    BenchError,
    _exit_on_sigterm,
    _require_loopback,
    _sizes,
    positive,
    postgres_database,
)
from bench.throughput import (
    PROJECT_ROOT,
    ROOMY_ACCOUNT,
    Stub,
    migrate,
    queue_emails,
    stub_call,
    stub_configure,
    stub_process,
    worker_environment,
    worker_process,
)

DEFAULT_WORKERS = (1, 2, 4)
DEFAULT_RATE = 100
DEFAULT_SECONDS = 10
DEFAULT_LATENCY_S = 0.05
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PacingResult:
    workers: int
    emails: int
    seconds: float
    share: float
    most_in_a_second: int
    throttled: int
    peak_in_flight: int
    load: float
    pacing: list[str]  # each worker's account of its slots, logged as it stopped


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        _require_loopback(args.postgres)
        if not SES_SENDER.exists():
            raise BenchError(f"{SES_SENDER} not found: install the project (make test or pip -e .)")
        with tempfile.TemporaryDirectory(prefix="ses-sender-bench-") as directory:
            workdir = Path(directory)
            with stub_process(workdir) as stub:
                results = [
                    measure(args, stub, workdir, workers)
                    for workers in args.workers
                    for _ in range(args.repeat)
                ]
    except BenchError as error:
        print(f"bench.pacing: {error}", file=sys.stderr)
        return 1
    print(format_report(args, results))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pacing",
        description="Share of the rate and throttles of 1, 2, 4 workers against a strict window.",
    )
    parser.add_argument(
        "--workers",
        type=_sizes,
        default=list(DEFAULT_WORKERS),
        help="worker counts to run, comma-separated (default: 1,2,4)",
    )
    parser.add_argument(
        "--rate", type=positive, default=DEFAULT_RATE, help="EMAIL_RATE and the stub's window"
    )
    parser.add_argument(
        "--seconds", type=positive, default=DEFAULT_SECONDS, help="of sending per run"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=DEFAULT_LATENCY_S,
        help=f"seconds the stub takes to answer (default: {DEFAULT_LATENCY_S})",
    )
    parser.add_argument("--repeat", type=positive, default=1, help="runs per worker count")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES),
        metavar="DSN",
        help="an admin connection on a loopback server; the bench creates and drops its own "
        f"databases there (default: ${POSTGRES_ENV} or {DEFAULT_POSTGRES})",
    )
    return parser


def measure(args: argparse.Namespace, stub: Stub, workdir: Path, workers: int) -> PacingResult:
    with postgres_database(args.postgres) as database_url:
        migrate(database_url, workdir, PROJECT_ROOT)
        result = asyncio.run(_run(args, stub, workdir, workers, database_url))
    print(_progress(result), file=sys.stderr, flush=True)
    return result


async def _run(
    args: argparse.Namespace, stub: Stub, workdir: Path, workers: int, database_url: str
) -> PacingResult:
    emails = args.rate * args.seconds
    await stub_call(stub, "POST", "/_stub/reset")
    window = {"max_per_second": args.rate, "latency_s": args.latency}
    await stub_configure(stub, {**ROOMY_ACCOUNT, **window})
    environment = worker_environment(
        database_url,
        workdir,
        PROJECT_ROOT,
        stub_url=stub.url,
        concurrency=max(50, args.rate),
        rate=args.rate,
        log_level="INFO",
    )
    with contextlib.ExitStack() as processes:
        logs = [workdir / f"pacing-worker-{n}.log" for n in range(workers)]
        for log in logs:
            processes.enter_context(worker_process(environment, workdir, log_name=log.name))
        await _until(lambda: all(_started(log) for log in logs), START_TIMEOUT_S, "start")
        # Queued once all are up: a starting process takes a CPU for a second, which on a
        # small machine delays the others' sends and the stub's stamps of them.
        await queue_emails(database_url, emails)
        await _until_accepted(stub, emails, timeout_s=args.seconds * 5 + 30)
    pacing = [line for log in logs for line in log.read_text().splitlines() if " pacing: " in line]
    received = (await _received(stub))["received"]
    counts = await stub_call(stub, "GET", "/_stub/counts")
    times = sorted(record["at"] for record in received if record["status"] == 200)
    duration = times[-1] - times[0]
    return PacingResult(
        workers=workers,
        emails=emails,
        seconds=duration,
        share=(len(times) - 1) / duration / args.rate,
        most_in_a_second=most_in_any_second(times),
        throttled=counts["throttled"],
        peak_in_flight=counts["peak_in_flight"],
        load=os.getloadavg()[0],
        pacing=[line.split(" pacing: ", 1)[1] for line in pacing],
    )


def most_in_any_second(times: list[float]) -> int:
    """The most sends in any window (t - 1 s, t], as the stub counts."""
    most = 0
    start = 0
    for end, at in enumerate(times):
        while times[start] <= at - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def _started(log: Path) -> bool:
    return log.exists() and "sending through" in log.read_text(errors="replace")


async def _until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for the workers to {what}")
        await asyncio.sleep(0.1)


async def _until_accepted(stub: Stub, emails: int, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (await stub_call(stub, "GET", "/_stub/counts"))["accepted"] < emails:
        if time.monotonic() > deadline:
            raise BenchError(f"SES did not accept {emails} emails in {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


async def _received(stub: Stub) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(trust_env=False) as session,
        session.get(f"{stub.url}/_stub/received") as response,
    ):
        reply: dict[str, Any] = await response.json()
        return reply


def _progress(result: PacingResult) -> str:
    return (
        f"{result.workers} worker(s): {result.share:.2%} of the rate, "
        f"{result.throttled} throttled, load {result.load:.1f}"
        + "".join(f"\n  worker: {pacing}" for pacing in result.pacing)
    )


def format_report(args: argparse.Namespace, results: list[PacingResult]) -> str:
    lines = [
        f"Pacing: EMAIL_RATE {args.rate}/s, the stub's strict window {args.rate}/s, "
        f"latency {args.latency * 1000:.0f} ms, {args.rate * args.seconds} emails per run",
        "",
        "| workers | share of the rate | most in any 1 s | throttled | peak in flight | load |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.workers} | {r.share:.2%} | {r.most_in_a_second} | {r.throttled} | "
        f"{r.peak_in_flight} | {r.load:.1f} |"
        for r in results
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
