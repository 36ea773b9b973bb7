"""Ingest benchmark: recipients accepted per second by `POST /v1/messages`, end to end over HTTP.

    make bench-ingest                  # or: .venv/bin/python -m bench.ingest --help

For each backend (SQLite in a temporary file, PostgreSQL in a temporary database created and
dropped here) and each size, the bench

1. creates a fresh database and runs `ses-sender migrate` on it;
2. starts a fresh `ses-sender api` process on a free loopback port (so its peak memory belongs
   to that size alone), with EMAIL_TRANSPORT=outbox and no .env file;
3. posts one message with N distinct recipients once to warm up, then `--repeat` times, timing
   each from sending the request to having read the whole 200 response;
4. reads the process's peak resident memory (VmHWM in /proc/<pid>/status), then stops it.

Only loopback addresses are contacted. The API process, the temporary files and the temporary
PostgreSQL databases are removed even when a run fails or is interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import asyncpg
import httpx

POSTGRES_ENV = "SES_SENDER_BENCH_POSTGRES"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgresql")
DEFAULT_SIZES = (10_000, 100_000)
DEFAULT_REPEAT = 3
API_KEY = "bench-key-0123456789"
# The console script installed next to this interpreter (.venv/bin/ses-sender).
SES_SENDER = Path(sys.executable).parent / "ses-sender"
READY_TIMEOUT_S = 120.0  # a loaded machine can take a minute to import and start the API
REQUEST_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 15.0


class BenchError(Exception):
    """A run that cannot give a figure; printed as one line."""


@dataclass(frozen=True)
class Cell:
    """The figures for one backend and one request size."""

    backend: str
    recipients: int
    seconds: list[float]  # one per timed request, warm-up excluded
    server_elapsed: list[str]  # the service's own `elapsed` for the same requests
    idle_rss_kib: int  # VmHWM once the process answered /health, before any POST
    peak_rss_kib: int  # VmHWM after the last request

    def rates(self) -> list[float]:
        return [self.recipients / seconds for seconds in self.seconds]


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    base_url: str


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A plain `kill` runs the clean-up too (the default SIGTERM action would skip `finally`).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if "postgresql" in args.backends:
            _require_loopback(args.postgres)
        if not SES_SENDER.exists():
            raise BenchError(f"{SES_SENDER} not found: install the project (make test or pip -e .)")
        cells = run(args.backends, args.sizes, args.repeat, args.postgres)
    except BenchError as error:
        print(f"bench.ingest: {error}", file=sys.stderr)
        return 1
    print(format_table(cells, args.repeat))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(cell) for cell in cells], indent=2) + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="Recipients accepted per second by POST /v1/messages, per backend and size.",
    )
    parser.add_argument(
        "--backends",
        type=_backends,
        default=list(BACKENDS),
        help="comma-separated, from: sqlite,postgresql (default: both)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=list(DEFAULT_SIZES),
        help="recipients per request, comma-separated (default: 10000,100000)",
    )
    parser.add_argument(
        "--repeat",
        type=positive,
        default=DEFAULT_REPEAT,
        help=f"timed requests per size, after one warm-up (default: {DEFAULT_REPEAT})",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES),
        metavar="DSN",
        help="an admin connection on a loopback server; the bench creates and drops its own "
        f"database there (default: ${POSTGRES_ENV} or {DEFAULT_POSTGRES})",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the raw figures")
    return parser


def _backends(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {','.join(BACKENDS)}")
    return names


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected numbers, e.g. 10000,100000") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("expected positive numbers")
    return sizes


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected at least 1")
    return value


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signal.SIGTERM)


def _require_loopback(dsn: str) -> None:
    host = urlsplit(dsn).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BenchError(f"PostgreSQL host {host!r}: the bench only connects to loopback addresses")


def run(
    backends: list[str],
    sizes: list[int],
    repeat: int,
    postgres_dsn: str,
    body_for: Callable[[int], bytes] | None = None,
) -> list[Cell]:
    """`body_for(size)`: the request to time (default: one plain message of `size`)."""
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="ses-sender-bench-") as directory:
        workdir = Path(directory)
        for backend in backends:
            for size in sizes:
                with _database(backend, workdir, postgres_dsn) as database_url:
                    cell = measure(backend, database_url, workdir, size, repeat, body_for)
                print(_progress(cell), file=sys.stderr, flush=True)
                cells.append(cell)
    return cells


@contextmanager
def _database(backend: str, workdir: Path, postgres_dsn: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'ingest-{uuid.uuid4().hex[:12]}.db'}"
        return  # the temporary directory goes with its files
    with postgres_database(postgres_dsn) as url:
        yield url


@contextmanager
def postgres_database(admin_dsn: str, *, keep: bool = False) -> Iterator[str]:
    """A new, empty database on the server `admin_dsn` names; dropped on the way out unless
    `keep`."""
    name = f"ses_sender_bench_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(admin_dsn, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as error:
        raise BenchError(f"cannot create a database on {_shown(admin_dsn)}: {error}") from None
    try:
        yield urlsplit(admin_dsn)._replace(path=f"/{name}").geturl()
    finally:
        if not keep:
            asyncio.run(_admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _shown(dsn: str) -> str:
    """The DSN without its user and password, for messages."""
    parts = urlsplit(dsn)
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{parts.hostname}{port}").geturl()


async def _admin(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def measure(
    backend: str,
    database_url: str,
    workdir: Path,
    size: int,
    repeat: int,
    body_for: Callable[[int], bytes] | None = None,
) -> Cell:
    environment = service_environment(database_url, workdir, max_recipients=size)
    migrate = subprocess.run(
        [str(SES_SENDER), "migrate"],
        env=environment,
        cwd=workdir,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if migrate.returncode != 0:
        raise BenchError(f"ses-sender migrate failed: {migrate.stderr.decode()[-2000:]}")
    body = (body_for or request_body)(size)
    with api_process(environment, workdir) as server:
        idle = peak_rss_kib(server.process.pid)
        with httpx.Client(
            base_url=server.base_url,
            headers={"x-api-key": API_KEY, "content-type": "application/json"},
            timeout=REQUEST_TIMEOUT_S,
            trust_env=False,  # no proxy from the environment: straight to the loopback port
        ) as client:
            post(client, body, size)  # warm-up
            timed = [post(client, body, size) for _ in range(repeat)]
        peak = peak_rss_kib(server.process.pid)
    return Cell(
        backend=backend,
        recipients=size,
        seconds=[seconds for seconds, _ in timed],
        server_elapsed=[elapsed for _, elapsed in timed],
        idle_rss_kib=idle,
        peak_rss_kib=peak,
    )


def service_environment(database_url: str, workdir: Path, *, max_recipients: int) -> dict[str, str]:
    """Only what the service needs: nothing from the caller's environment or .env leaks in."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "HOME": str(workdir),  # no ~/.aws or other per-user configuration
        "DATABASE_URL": database_url,
        "API_KEY": API_KEY,
        "EMAIL_TRANSPORT": "outbox",
        "OUTBOX_DIR": str(workdir / "outbox"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "SERVER_BIND": "127.0.0.1",
        "MAX_RECIPIENTS_PER_REQUEST": str(max(max_recipients, 1)),
        "LOG_LEVEL": "WARNING",
    }


def request_body(size: int) -> bytes:
    message = {
        "topicId": "bench-ingest",
        "emails": [f"user{index}@example.com" for index in range(size)],
        "subject": "Benchmark",
        "content": "<h1>Hello</h1><p>This is the ingest benchmark.</p>",
    }
    return json.dumps({"messages": [message]}).encode()


@contextmanager
def api_process(environment: dict[str, str], workdir: Path) -> Iterator[Server]:
    port = free_port()
    log_path = workdir / f"api-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(SES_SENDER), "api"],
            env={**environment, "SERVER_PORT": str(port)},
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            server = Server(process, f"http://127.0.0.1:{port}")
            wait_until_ready(server, log_path)
            yield server
        finally:
            stop(process)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_ready(server: Server, log_path: Path, *, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=server.base_url, timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise BenchError(f"ses-sender api exited: {_tail(log_path)}")
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise BenchError(f"ses-sender not ready after {timeout_s:.0f}s: {_tail(log_path)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-2000:].strip() or "(no output)"


def post(client: httpx.Client, body: bytes, recipients: int) -> tuple[float, str]:
    """Seconds from sending the request to having read the whole 200 response."""
    started = time.perf_counter()
    response = client.post("/v1/messages", content=body)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise BenchError(
            f"POST /v1/messages answered {response.status_code}: {response.text[:500]}"
        )
    reply = response.json()
    if reply["count"] != recipients or len(reply["messages"][0]["requestIds"]) != recipients:
        raise BenchError(f"POST /v1/messages accepted {reply['count']} of {recipients} recipients")
    return seconds, str(reply["elapsed"])


def peak_rss_kib(pid: int) -> int:
    """The process's high-water resident set size so far, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise BenchError(f"no VmHWM in /proc/{pid}/status")


def _progress(cell: Cell) -> str:
    rates = ", ".join(f"{rate:,.0f}" for rate in cell.rates())
    return f"  {cell.backend} {cell.recipients:,} recipients: {rates} rec/s"


def format_table(cells: list[Cell], repeat: int) -> str:
    header = (
        "backend",
        "recipients",
        "median rec/s",
        "min rec/s",
        "max rec/s",
        "median time",
        "idle RSS",
        "peak RSS",
    )
    rows = [header]
    for cell in cells:
        rates = cell.rates()
        rows.append(
            (
                cell.backend,
                f"{cell.recipients:,}",
                f"{statistics.median(rates):,.0f}",
                f"{min(rates):,.0f}",
                f"{max(rates):,.0f}",
                f"{statistics.median(cell.seconds) * 1000:,.0f} ms",
                f"{cell.idle_rss_kib / 1024:,.0f} MiB",
                f"{cell.peak_rss_kib / 1024:,.0f} MiB",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        f"POST /v1/messages, one message of N distinct recipients: {repeat} timed requests after "
        "one warm-up, a fresh database and API process per row",
        "",
    ]
    for number, row in enumerate(rows):
        cells_text = [
            text.ljust(width) if column == 0 else text.rjust(width)
            for column, (text, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells_text))
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
