"""Ingest against sending on SQLite: the send rate with and without clients posting, in one run.

    make bench-ingest-vs-send          # or: .venv/bin/python -m bench.ingest_vs_send --help

One `ses-sender serve` process (API and worker in one, the SQLite default) on a fresh database,
sending to the SES stub (`tests/support/ses_stub.py`, its own process) at EMAIL_RATE=`--rate`,
gets a backlog that outlasts the run. Then:

1. **alone**: for `--seconds`, nothing else happens; the emails sent are counted (the sends
   the stub accepted, so the bench never takes SQLite's lock itself);
2. **with ingest**: for `--seconds`, `--clients` clients each post `--recipients` recipients
   one request after another (each client the same body every time, built once), and the
   emails sent are counted the same way, with every POST's time from sending the request to
   reading the whole response.

It prints both send rates, their ratio (the figure to compare: it is taken within one run), the
recipients accepted per second and the POST latency (median, p99, maximum). Only loopback
addresses are contacted; the process and the temporary files are removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.ingest import (
    API_KEY,
    SES_SENDER,
    BenchError,
    Server,
    _exit_on_sigterm,
    _tail,
    free_port,
    positive,
    stop,
    wait_until_ready,
)
from bench.throughput import (
    PROJECT_ROOT,
    ROOMY_ACCOUNT,
    Stub,
    stub_call,
    stub_configure,
    stub_process,
    worker_environment,
)

DEFAULT_RATE = 1_000
DEFAULT_CLIENTS = 20
DEFAULT_RECIPIENTS = 1_000
DEFAULT_SECONDS = 60
# Queued before the run: more than both phases can send, so sending never runs dry.
BACKLOG_SECONDS_OF_SENDING = 2.5
BACKLOG_CHUNK = 50_000  # recipients per backlog request
SETTLE_S = 5.0  # sending at full rate before the first phase starts
REQUEST_TIMEOUT_S = 120.0
SERVE_READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Phase:
    sent: int
    seconds: float
    posts: list[float]  # seconds per POST
    recipients_posted: int

    @property
    def send_rate(self) -> float:
        return self.sent / self.seconds


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        alone, loaded = run(args)
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    print(report(args, alone, loaded))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=positive, default=DEFAULT_RATE, help="EMAIL_RATE")
    parser.add_argument("--clients", type=positive, default=DEFAULT_CLIENTS)
    parser.add_argument("--recipients", type=positive, default=DEFAULT_RECIPIENTS)
    parser.add_argument("--seconds", type=positive, default=DEFAULT_SECONDS, help="per phase")
    return parser


def run(args: argparse.Namespace) -> tuple[Phase, Phase]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-vs-send-") as directory:
        workdir = Path(directory)
        with stub_process(workdir) as stub:
            environment = {
                **worker_environment(
                    f"sqlite:///{workdir / 'app.db'}",
                    workdir,
                    PROJECT_ROOT,
                    stub_url=stub.url,
                    concurrency=args.rate * 2,
                    rate=args.rate,
                ),
                "API_KEY": API_KEY,
                "SERVER_BIND": "127.0.0.1",
                "MAX_RECIPIENTS_PER_REQUEST": str(BACKLOG_CHUNK),
            }
            asyncio.run(stub_configure(stub, ROOMY_ACCOUNT))
            with serve_process(environment, workdir) as server:
                return asyncio.run(_phases(args, server, stub))


@contextmanager
def serve_process(environment: dict[str, str], workdir: Path) -> Iterator[Server]:
    port = free_port()
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(SES_SENDER), "serve"],
            env={**environment, "SERVER_PORT": str(port)},
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            server = Server(process, f"http://127.0.0.1:{port}")
            # `serve` migrates first, and on a busy shared machine starting takes a while.
            wait_until_ready(server, log_path, timeout_s=SERVE_READY_TIMEOUT_S)
            yield server
        finally:
            stop(process)
            if process.returncode not in (0, -signal.SIGTERM):
                print(f"ses-sender serve: {_tail(log_path)}", file=sys.stderr)


async def _phases(args: argparse.Namespace, server: Server, stub: Stub) -> tuple[Phase, Phase]:
    async with httpx.AsyncClient(
        base_url=server.base_url,
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
        timeout=REQUEST_TIMEOUT_S,
        trust_env=False,
    ) as client:
        backlog = int(args.rate * args.seconds * BACKLOG_SECONDS_OF_SENDING)
        for first in range(0, backlog, BACKLOG_CHUNK):
            count = min(BACKLOG_CHUNK, backlog - first)
            await _post(client, _body("backlog", first, count))
        await asyncio.sleep(SETTLE_S)
        alone = await _phase(args, client, stub, clients=0)
        loaded = await _phase(args, client, stub, clients=args.clients)
    return alone, loaded


async def _phase(
    args: argparse.Namespace, client: httpx.AsyncClient, stub: Stub, *, clients: int
) -> Phase:
    posts: list[float] = []
    stop_at = time.monotonic() + args.seconds

    async def poster(number: int) -> int:
        posted = 0
        # Built once: the bench's own CPU would otherwise be taken from the service it measures
        # (each request is stored as new recipients all the same).
        body = _body(f"client{number}", 0, args.recipients)
        while time.monotonic() < stop_at:
            started = time.monotonic()
            await _post(client, body)
            posts.append(time.monotonic() - started)
            posted += args.recipients
        return posted

    before, started = await _sent(stub), time.monotonic()
    posting = [asyncio.create_task(poster(number)) for number in range(clients)]
    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
    sent, seconds = await _sent(stub) - before, time.monotonic() - started
    posted = sum(await asyncio.gather(*posting))
    if await _sent(stub) >= int(args.rate * args.seconds * BACKLOG_SECONDS_OF_SENDING):
        raise BenchError("the backlog ran out: sending was not measured at full rate")
    return Phase(sent, seconds, posts, posted)


def _body(topic: str, first: int, count: int) -> bytes:
    message = {
        "topicId": topic,
        "emails": [f"{topic}-{index}@example.com" for index in range(first, first + count)],
        "subject": "Benchmark",
        "content": "<p>This is the ingest-against-sending benchmark.</p>",
    }
    return json.dumps({"messages": [message]}).encode()


async def _post(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/v1/messages", content=body)
    if response.status_code != 200:
        raise BenchError(f"POST /v1/messages: {response.status_code} {response.text[:300]}")


async def _sent(stub: Stub) -> int:
    """Emails SES (the stub) accepted."""
    return (await stub_call(stub, "GET", "/_stub/counts"))["accepted"]


def report(args: argparse.Namespace, alone: Phase, loaded: Phase) -> str:
    posts = sorted(loaded.posts)
    p99 = posts[min(len(posts) - 1, int(len(posts) * 0.99))] if posts else float("nan")
    lines = [
        f"SQLite, EMAIL_RATE={args.rate}, {args.seconds} s per phase, {args.clients} clients "
        f"posting {args.recipients:,} recipients each, one request after another",
        f"send rate alone:        {alone.send_rate:8.1f} emails/s",
        f"send rate with ingest:  {loaded.send_rate:8.1f} emails/s",
        f"ratio:                  {loaded.send_rate / alone.send_rate:8.2f}",
        f"ingest:                 {loaded.recipients_posted / loaded.seconds:8.0f} recipients/s "
        f"in {len(posts)} requests",
    ]
    if posts:
        lines.append(
            f"POST latency:           median {statistics.median(posts) * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, max {posts[-1] * 1000:.0f} ms"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
