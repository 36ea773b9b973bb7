"""Throughput benchmark: emails/s and CPU per email of one `ses-sender worker`, and its memory.

    make bench-throughput              # or: .venv/bin/python -m bench.throughput --help

Throughput: a fresh PostgreSQL database gets N queued emails (one content, N recipients,
inserted with one `INSERT ... SELECT generate_series`); the SES stub
(`tests/support/ses_stub.py`, answering at once) runs as its own process, so its CPU is not the
worker's; then one real `ses-sender worker` process claims, paces, sends and records them all,
with EMAIL_RATE high enough never to bind. Progress is sampled every `SAMPLE_INTERVAL_S`: the
emails recorded Sent in the database, the worker's CPU time (utime + stime from
/proc/<pid>/stat), how long it waited for a CPU (/proc/<pid>/schedstat: on a shared machine
that, not the worker, sets emails/s) and the CPU of the PostgreSQL backends serving it. The
figures cover the window from the first sample with an email recorded to the first with all N
recorded, so process start-up (imports, connecting) is left out.

The bare client: after each worker run, `bench/bare_client.py` sends the same email to the same
stub through the worker's own HTTP client (aiohttp + our SigV4 signer), 64 in flight, with no
database, no pacing and no recording; the report gives the worker's emails/s as a share of it,
measured in the same run, which is what holds on a shared machine whose speed varies.

Click rewriting: with `--clicks`, each repetition runs the worker twice on fresh databases,
links sent as they are (TRACK_CLICKS=false) and rewritten to tracked links (TRACK_CLICKS=true),
and the report gives the tracked run's emails/s as a share of the plain one's. With both
`--templated` and `--clicks`, a fourth run sends the template with its links tracked: the issue's
"templating and click rewriting" against plain sends, in one run.

Memory: for each queue size (default 10,000 and 1,000,000), a fresh database with that many
queued emails and a fresh worker that runs for a fixed time; its peak resident memory (VmHWM)
is read just before SIGTERM. Flat means the worker holds a bounded claim, not the queue.

Only loopback addresses are contacted; the processes and the temporary databases are removed
even when a run fails or is interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.ingest import (
    DEFAULT_POSTGRES,
    POSTGRES_ENV,
    SES_SENDER,
    BenchError,
    _exit_on_sigterm,
    _require_loopback,
    _sizes,
    _tail,
    peak_rss_kib,
    positive,
    postgres_database,
    stop,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EMAILS = 50_000
# In flight includes sends waiting to be recorded (every 0.1 s): too few and the worker idles
# waiting for slots (docs/decisions/0010-in-flight-limit-and-recording.md).
DEFAULT_CONCURRENCY = 1000
DEFAULT_MEMORY_SIZES = (10_000, 1_000_000)
BARE_EMAILS = 20_000  # enough for a steady rate, short next to a worker's run
DEFAULT_MEMORY_SECONDS = 20.0
# Far above what one process can send, and the most Settings accepts: the pacer never waits.
EMAIL_RATE = 100_000
# What the stub's GetAccount reports: a MaxSendRate and daily quota that never bind.
ROOMY_ACCOUNT = {"max_send_rate": EMAIL_RATE, "max_24_hour_send": 100_000_000}
SAMPLE_INTERVAL_S = 0.2
MIN_RUN_TIMEOUT_S = 60.0
SLOWEST_EXPECTED_RATE = 100.0  # emails/s; below this a run is called stuck
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
TOPIC = "bench-throughput"
# A short newsletter: what compose works on (the text part is derived once per content).
CONTENT_HTML = (
    "<html><head><title>News</title></head><body>"
    "<h1>This month at Example</h1>"
    + "".join(
        f"<h2>Story {n}</h2><p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do "
        f"eiusmod tempor incididunt ut labore et dolore magna aliqua. "
        f'<a href="https://example.com/stories/{n}">Read more</a></p>'
        for n in range(1, 9)
    )
    + "<p>You receive this because you subscribed.</p></body></html>"
)


TEMPLATED_TRACKED = "templated, tracked"

# The same newsletter as a template: a subject and a greeting from each recipient's data.
TEMPLATED_SUBJECT = "{{ shop }}: this month for {{ name }}"
TEMPLATED_HTML = CONTENT_HTML.replace(
    "<h1>This month at Example</h1>",
    "<h1>This month at Example</h1><p>Hello {{ name }}: your {{ plan }} plan in {{ city }} "
    "has {{ points }} points (member {{ order }}).</p>",
)


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic seconds
    sent: int  # emails recorded Sent in the database
    cpu_s: float  # the worker's user + system CPU seconds so far
    runnable_wait_s: float  # how long its main thread has waited for a CPU so far
    # CPU seconds so far of each PostgreSQL backend serving the worker, by process id
    database_cpu_s: dict[int, float]


@dataclass(frozen=True)
class ThroughputResult:
    mode: (
        str  # plain; templated: rendered per recipient from its own data; tracked: links rewritten
    )
    emails: int
    concurrency: int
    seconds: float  # first sample with an email recorded -> all recorded
    emails_per_s: float
    worker_cpu_ms_per_email: float
    worker_cpu_share: float  # worker CPU seconds per wall second in the window (1.0 = one core)
    # Wall seconds in the window its main thread was ready to run but other processes held
    # every CPU: on a busy machine this, not the worker, is what lowers emails/s.
    worker_cpu_wait_share: float
    # PostgreSQL's CPU for the worker's statements (its backends, read from /proc: the bench
    # only runs against a server on this machine).
    database_cpu_ms_per_email: float
    stub_cpu_ms_per_email: float
    stub_received: int
    stub_accepted: int
    stub_throttled: int
    worker_peak_rss_kib: int
    # The bare client (bench/bare_client.py) in the same run: the same emails to the same stub
    # through the worker's own HTTP client, no database; and the worker's share of it.
    bare_emails_per_s: float
    bare_cpu_ms_per_email: float
    share_of_bare: float


@dataclass(frozen=True)
class MemoryResult:
    queued: int
    seconds: float
    sent: int
    peak_rss_kib: int


@dataclass(frozen=True)
class Stub:
    process: subprocess.Popen[bytes]
    url: str


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # clean up on a plain `kill` too
    try:
        _require_loopback(args.postgres)
        if not SES_SENDER.exists():
            raise BenchError(f"{SES_SENDER} not found: install the project (make test or pip -e .)")
        with tempfile.TemporaryDirectory(prefix="ses-sender-bench-") as directory:
            workdir = Path(directory)
            with stub_process(workdir) as stub:
                modes = ["plain"]
                modes += ["templated"] if args.templated else []
                modes += ["tracked"] if args.clicks else []
                modes += [TEMPLATED_TRACKED] if args.templated and args.clicks else []
                # Every other repetition runs the modes in reverse, so that whatever grows over
                # a repetition (the server's caches, its WAL, the machine's other work) falls on
                # each mode alike, not always on the last.
                throughput = [
                    measure_throughput(args, stub, workdir, mode=mode)
                    for repetition in range(args.repeat)
                    for mode in (modes if repetition % 2 == 0 else modes[::-1])
                ]
                memory = [
                    measure_memory(args, stub, workdir, queued) for queued in args.memory_sizes
                ]
    except BenchError as error:
        print(f"bench.throughput: {error}", file=sys.stderr)
        return 1
    print(format_report(args, throughput, memory))
    if args.json is not None:
        figures = {
            "throughput": [asdict(result) for result in throughput],
            "memory": [asdict(result) for result in memory],
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput",
        description="Emails/s, CPU ms per email and peak memory of one ses-sender worker.",
    )
    parser.add_argument(
        "--emails",
        type=positive,
        default=DEFAULT_EMAILS,
        help=f"emails queued for the throughput run (default: {DEFAULT_EMAILS})",
    )
    parser.add_argument(
        "--concurrency",
        type=positive,
        default=DEFAULT_CONCURRENCY,
        help=f"the worker's MAX_CONCURRENT (default: {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--repeat", type=positive, default=1, help="throughput runs, each on a fresh database"
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up a run after this long (default: a run slower than "
        f"{SLOWEST_EXPECTED_RATE:.0f} emails/s, at least {MIN_RUN_TIMEOUT_S:.0f} s)",
    )
    parser.add_argument(
        "--templated",
        action="store_true",
        help="each run twice, plain then templated (five data fields per recipient, rendered "
        "per recipient), and the ratio of the two",
    )
    parser.add_argument(
        "--memory-sizes",
        type=_sizes_or_none,
        default=list(DEFAULT_MEMORY_SIZES),
        help="queue sizes for the memory runs, comma-separated, or 'none' (default: 10000,1000000)",
    )
    parser.add_argument(
        "--memory-seconds",
        type=float,
        default=DEFAULT_MEMORY_SECONDS,
        help=f"how long each memory run's worker runs (default: {DEFAULT_MEMORY_SECONDS:.0f})",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=PROJECT_ROOT,
        help="the checkout whose ses_sender the worker runs, e.g. an older revision to compare "
        "(default: this one)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES),
        metavar="DSN",
        help="an admin connection on a loopback server; the bench creates and drops its own "
        f"databases there (default: ${POSTGRES_ENV} or {DEFAULT_POSTGRES})",
    )
    parser.add_argument(
        "--clicks",
        action="store_true",
        help="also run each repetition with click rewriting (TRACK_CLICKS=true) and compare",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the raw figures")
    return parser


def _sizes_or_none(text: str) -> list[int]:
    return [] if text.strip().lower() == "none" else _sizes(text)


# -- the SES stub ------------------------------------------------------------------------------


@contextmanager
def stub_process(workdir: Path) -> Iterator[Stub]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.ses_stub", "--port", "0"],
        cwd=PROJECT_ROOT,
        env={**_base_environment(workdir), "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield Stub(process, f"http://127.0.0.1:{_read_port(process)}")
    finally:
        stop(process)


def _read_port(process: subprocess.Popen[bytes]) -> int:
    assert process.stdout is not None
    line = process.stdout.readline()  # the stub prints its port once listening, or exits
    if not line.strip().isdigit():
        raise BenchError(f"the SES stub did not start (exit code {process.wait()})")
    return int(line)


async def stub_configure(stub: Stub, settings: dict[str, Any]) -> None:
    """`POST /_stub/config`: the stub's answers and the account its GetAccount reports."""
    async with (
        aiohttp.ClientSession(trust_env=False) as session,
        session.post(f"{stub.url}/_stub/config", json=settings) as response,
    ):
        response.raise_for_status()


async def stub_call(stub: Stub, method: str, path: str) -> dict[str, int]:
    async with (
        aiohttp.ClientSession(trust_env=False) as session,
        session.request(method, f"{stub.url}{path}") as response,
    ):
        reply: dict[str, int] = await response.json(content_type=None)
        return reply


# -- database ----------------------------------------------------------------------------------


def migrate(database_url: str, workdir: Path, source: Path) -> None:
    done = subprocess.run(
        [str(SES_SENDER), "migrate"],
        env={**_base_environment(workdir), "PYTHONPATH": str(source), "DATABASE_URL": database_url},
        cwd=workdir,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"ses-sender migrate failed: {done.stderr.decode()[-2000:]}")


async def queue_emails(database_url: str, count: int, *, templated: bool = False) -> None:
    """`count` emails due now, to distinct addresses, sharing one content; templated: each
    with five data fields of its own, which the content's subject and HTML read."""
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        async with connection.transaction():
            content_id = await connection.fetchval(
                "INSERT INTO email_contents (topic_id, subject, content, created_at, templated, "
                "data) VALUES ($1, $2, $3, now(), $4, $5) RETURNING id",
                TOPIC,
                TEMPLATED_SUBJECT if templated else "This month at Example",
                TEMPLATED_HTML if templated else CONTENT_HTML,
                templated,
                '{"shop": "Example"}' if templated else None,
            )
            await connection.execute(
                'INSERT INTO email_requests (topic_id, "to", recipient_key, content_id, '
                "scheduled_at, status, due_at, attempts, open_count, click_count, created_at, "
                "updated_at, data) "
                "SELECT $1, 'user' || n || '@example.com', 'user' || n || '@example.com', $2, "
                "now(), 0, now(), 0, 0, 0, now(), now(), "
                "CASE WHEN $4 THEN json_build_object('name', 'User ' || n, 'order', n, "
                "'city', 'Seoul', 'plan', 'pro', 'points', n % 1000)::text END "
                "FROM generate_series(1, $3::int) AS n",
                TOPIC,
                content_id,
                count,
                templated,
            )
        await connection.execute("ANALYZE email_requests")
    finally:
        await connection.close()


# -- the worker --------------------------------------------------------------------------------


def _base_environment(workdir: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "HOME": str(workdir),  # no ~/.aws or other per-user configuration
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def worker_environment(
    database_url: str,
    workdir: Path,
    source: Path,
    *,
    stub_url: str,
    concurrency: int,
    rate: float = EMAIL_RATE,
    log_level: str = "WARNING",
    track_clicks: bool = False,
) -> dict[str, str]:
    """Only what the worker needs: nothing from the caller's environment or .env leaks in."""
    return {
        **_base_environment(workdir),
        "PYTHONPATH": str(source),
        "DATABASE_URL": database_url,
        "EMAIL_TRANSPORT": "ses",
        "EMAIL_SENDER": "News <news@example.com>",
        "EMAIL_RATE": str(rate),
        "MAX_CONCURRENT": str(concurrency),
        "SERVER_HOST": "https://mail.example.com",
        "TRACKING_SECRET": "bench-tracking-secret-0123456789",
        "TRACK_CLICKS": "true" if track_clicks else "false",
        "AWS_ENDPOINT_URL_SESV2": stub_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "LOG_LEVEL": log_level,
    }


@contextmanager
def worker_process(
    environment: dict[str, str], workdir: Path, *, log_name: str = "worker.log"
) -> Iterator[subprocess.Popen[bytes]]:
    log_path = workdir / log_name
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(SES_SENDER), "worker"],
            env=environment,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            stop(process)
    if process.returncode != 0:
        raise BenchError(f"ses-sender worker exited with {process.returncode}: {_tail(log_path)}")


def runnable_wait_seconds(pid: int) -> float:
    """Time the process's main thread spent ready to run but waiting for a CPU (schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


async def database_cpu_seconds(connection: asyncpg.Connection) -> dict[int, float]:
    """CPU so far of every backend on this database except the bench's own, by process id."""
    rows = await connection.fetch(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    seconds: dict[int, float] = {}
    for row in rows:
        with contextlib.suppress(FileNotFoundError):  # a connection closed meanwhile
            seconds[row["pid"]] = cpu_seconds(row["pid"])
    return seconds


async def sent_count(connection: asyncpg.Connection) -> int:
    count: int = await connection.fetchval("SELECT count(*) FROM email_requests WHERE status = 2")
    return count


# -- the runs ----------------------------------------------------------------------------------


def measure_throughput(
    args: argparse.Namespace, stub: Stub, workdir: Path, *, mode: str = "plain"
) -> ThroughputResult:
    with postgres_database(args.postgres) as database_url:
        migrate(database_url, workdir, args.source)
        result = asyncio.run(_throughput(args, stub, workdir, database_url, mode))
    print(
        f"  {result.emails:,} emails ({mode}): "
        f"{result.emails_per_s:,.0f} emails/s, "
        f"{result.worker_cpu_ms_per_email:.3f} worker CPU ms/email; the bare client "
        f"{result.bare_emails_per_s:,.0f}/s: {result.share_of_bare:.0%}",
        file=sys.stderr,
        flush=True,
    )
    return result


async def _throughput(
    args: argparse.Namespace, stub: Stub, workdir: Path, database_url: str, mode: str
) -> ThroughputResult:
    emails: int = args.emails
    await queue_emails(database_url, emails, templated=mode in ("templated", TEMPLATED_TRACKED))
    await stub_call(stub, "POST", "/_stub/reset")
    # An account whose MaxSendRate does not bind: the worker caps its rate at the account's.
    await stub_configure(stub, ROOMY_ACCOUNT)
    stub_cpu_before = cpu_seconds(stub.process.pid)
    timeout_s = args.run_timeout or max(MIN_RUN_TIMEOUT_S, emails / SLOWEST_EXPECTED_RATE)
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        environment = worker_environment(
            database_url,
            workdir,
            args.source,
            stub_url=stub.url,
            concurrency=args.concurrency,
            track_clicks=mode in ("tracked", TEMPLATED_TRACKED),
        )
        with worker_process(environment, workdir) as worker:
            samples = await _sample_until_sent(connection, worker, emails, timeout_s)
            peak_rss = peak_rss_kib(worker.pid)
    finally:
        await connection.close()
    stub_cpu_s = cpu_seconds(stub.process.pid) - stub_cpu_before
    counts = await stub_call(stub, "GET", "/_stub/counts")
    first = next(sample for sample in samples if sample.sent > 0)
    last = samples[-1]
    seconds = last.at - first.at
    window_emails = last.sent - first.sent
    if window_emails <= 0 or seconds <= 0:
        raise BenchError("too few samples to measure: queue more emails (--emails)")
    worker_cpu_s = last.cpu_s - first.cpu_s
    database_cpu_s = sum(
        seconds - first.database_cpu_s.get(pid, 0.0) for pid, seconds in last.database_cpu_s.items()
    )
    bare = await _bare_client(stub, workdir, args.source, min(emails, BARE_EMAILS))
    return ThroughputResult(
        mode=mode,
        emails=emails,
        concurrency=args.concurrency,
        seconds=seconds,
        emails_per_s=window_emails / seconds,
        worker_cpu_ms_per_email=worker_cpu_s * 1000 / window_emails,
        worker_cpu_share=worker_cpu_s / seconds,
        worker_cpu_wait_share=(last.runnable_wait_s - first.runnable_wait_s) / seconds,
        database_cpu_ms_per_email=database_cpu_s * 1000 / window_emails,
        stub_cpu_ms_per_email=stub_cpu_s * 1000 / max(1, counts["received"]),
        stub_received=counts["received"],
        stub_accepted=counts["accepted"],
        stub_throttled=counts["throttled"],
        worker_peak_rss_kib=peak_rss,
        bare_emails_per_s=bare.emails_per_s,
        bare_cpu_ms_per_email=bare.cpu_ms_per_email,
        share_of_bare=window_emails / seconds / bare.emails_per_s,
    )


@dataclass(frozen=True)
class BareResult:
    emails_per_s: float
    cpu_ms_per_email: float


async def _bare_client(stub: Stub, workdir: Path, source: Path, emails: int) -> BareResult:
    """Emails/s of the bare client against the stub, in a process of its own as the worker."""
    await stub_call(stub, "POST", "/_stub/reset")
    environment = {**_base_environment(workdir), "PYTHONPATH": str(source)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bare_client",
        "--url",
        stub.url,
        "--emails",
        str(emails),
        "--html",
        CONTENT_HTML,
        env=environment,
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise BenchError(f"the bare client failed: {err.decode(errors='replace')[-2000:]}")
    figures = json.loads(out)
    return BareResult(figures["emails_per_s"], figures["cpu_ms_per_email"])


async def _sample_until_sent(
    connection: asyncpg.Connection,
    worker: subprocess.Popen[bytes],
    emails: int,
    timeout_s: float,
) -> list[Sample]:
    samples: list[Sample] = []
    deadline = time.monotonic() + timeout_s
    while not samples or samples[-1].sent < emails:
        if worker.poll() is not None:
            raise BenchError(f"the worker exited early with {worker.returncode}")
        if time.monotonic() > deadline:
            sent = samples[-1].sent if samples else 0
            raise BenchError(f"only {sent:,} of {emails:,} sent after {timeout_s:.0f} s")
        await asyncio.sleep(SAMPLE_INTERVAL_S)
        sent = await sent_count(connection)
        samples.append(
            Sample(
                time.monotonic(),
                sent,
                cpu_seconds(worker.pid),
                runnable_wait_seconds(worker.pid),
                await database_cpu_seconds(connection),
            )
        )
    return samples


def measure_memory(
    args: argparse.Namespace, stub: Stub, workdir: Path, queued: int
) -> MemoryResult:
    with postgres_database(args.postgres) as database_url:
        migrate(database_url, workdir, args.source)
        result = asyncio.run(_memory(args, stub, workdir, database_url, queued))
    print(
        f"  {queued:,} queued: peak RSS {result.peak_rss_kib / 1024:,.1f} MiB, "
        f"{result.sent:,} sent in {result.seconds:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return result


async def _memory(
    args: argparse.Namespace, stub: Stub, workdir: Path, database_url: str, queued: int
) -> MemoryResult:
    await queue_emails(database_url, queued)
    await stub_call(stub, "POST", "/_stub/reset")  # the stub keeps what it receives
    await stub_configure(stub, ROOMY_ACCOUNT)
    environment = worker_environment(
        database_url, workdir, args.source, stub_url=stub.url, concurrency=args.concurrency
    )
    with worker_process(environment, workdir) as worker:
        started = time.monotonic()
        await asyncio.sleep(args.memory_seconds)
        if worker.poll() is not None:
            raise BenchError(f"the worker exited early with {worker.returncode}")
        peak_rss = peak_rss_kib(worker.pid)
        seconds = time.monotonic() - started
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        sent = await sent_count(connection)
    finally:
        await connection.close()
    return MemoryResult(queued=queued, seconds=seconds, sent=sent, peak_rss_kib=peak_rss)


# -- the report --------------------------------------------------------------------------------


def format_report(
    args: argparse.Namespace, throughput: list[ThroughputResult], memory: list[MemoryResult]
) -> str:
    lines = [
        f"One `ses-sender worker` on PostgreSQL, SES stub answering at once in its own process, "
        f"EMAIL_RATE={EMAIL_RATE}, MAX_CONCURRENT={args.concurrency}",
        "",
    ]
    header = (
        "mode",
        "emails",
        "seconds",
        "emails/s",
        "worker CPU ms/email",
        "worker CPU/wall",
        "waiting for CPU",
        "PostgreSQL CPU ms/email",
        "stub CPU ms/req",
        "stub received",
        "accepted",
        "throttled",
        "worker peak RSS",
        "bare client/s",
        "bare CPU ms/email",
        "worker/bare",
    )
    rows: list[tuple[str, ...]] = [
        (
            r.mode,
            f"{r.emails:,}",
            f"{r.seconds:.1f}",
            f"{r.emails_per_s:,.0f}",
            f"{r.worker_cpu_ms_per_email:.3f}",
            f"{r.worker_cpu_share:.2f}",
            f"{r.worker_cpu_wait_share:.0%}",
            f"{r.database_cpu_ms_per_email:.3f}",
            f"{r.stub_cpu_ms_per_email:.3f}",
            f"{r.stub_received:,}",
            f"{r.stub_accepted:,}",
            f"{r.stub_throttled:,}",
            f"{r.worker_peak_rss_kib / 1024:,.1f} MiB",
            f"{r.bare_emails_per_s:,.0f}",
            f"{r.bare_cpu_ms_per_email:.3f}",
            f"{r.share_of_bare:.0%}",
        )
        for r in throughput
    ]
    lines += _table(header, rows)
    plain = [r for r in throughput if r.mode == "plain"]
    for other in ("templated", "tracked", TEMPLATED_TRACKED):
        for before, after in zip(plain, [r for r in throughput if r.mode == other], strict=False):
            lines.append(
                f"{other}: {after.emails_per_s:,.0f} emails/s, "
                f"{after.emails_per_s / before.emails_per_s:.0%} of plain "
                f"({before.emails_per_s:,.0f}/s) in the same run, "
                f"{after.worker_cpu_ms_per_email / before.worker_cpu_ms_per_email:.2f}x the "
                "worker CPU per email"
            )
    if memory:
        lines += [
            "",
            f"Memory: a fresh worker per queue size, peak RSS (VmHWM) after "
            f"{args.memory_seconds:.0f} s of sending",
            "",
        ]
        memory_rows: list[tuple[str, ...]] = [
            (
                f"{m.queued:,}",
                f"{m.sent:,}",
                f"{m.peak_rss_kib / 1024:,.1f} MiB",
            )
            for m in memory
        ]
        lines += _table(("queued", "sent in the run", "peak RSS"), memory_rows)
    return "\n".join(lines)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(text.rjust(width) for text, width in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += [
        "  ".join(text.rjust(width) for text, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
