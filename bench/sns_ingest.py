"""SNS ingestion benchmark: SES notifications verified and stored per second by one API process.

    make bench-sns                     # or: .venv/bin/python -m bench.sns_ingest --help

The bench

1. creates a temporary PostgreSQL database and runs `ses-sender migrate` on it;
2. makes an SNS signing key and certificate, and serves the certificate the way SNS does, at
   `https://sns.us-east-1.amazonaws.com/<name>.pem`: an HTTPS host on loopback with a
   certificate from a test CA, reached through a local CONNECT proxy (`HTTPS_PROXY`), the CA
   trusted through `SSL_CERT_FILE`; it counts every fetch;
3. starts one `ses-sender api` process on a free loopback port, and queues `--requests`
   recipients through `POST /v1/messages`, then marks them sent with an SES message id each;
4. signs, before any timing, one SES Delivery notification per request and round
   (SignatureVersion 2, a payload the size of a real one, our request-id tag included);
5. posts a warm-up round, then `--rounds` timed rounds, `--concurrency` requests in flight, each
   answer checked (200 `{"message": "ok"}`); it reads the API process's CPU time around each
   round;
6. checks in the database that every notification is stored once and every request delivered.

Only loopback addresses are contacted; the process, files and database are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import httpx

from bench.ingest import (
    API_KEY,
    DEFAULT_POSTGRES,
    POSTGRES_ENV,
    SES_SENDER,
    BenchError,
    _exit_on_sigterm,
    _require_loopback,
    api_process,
    positive,
    postgres_database,
    service_environment,
)
from tests.support.signing import KeyPair, self_signed, sign, sns_timestamp, tls_ca, tls_server
from tests.support.sns_host import CertificateHost, ConnectProxy

DEFAULT_REQUESTS = 10_000
DEFAULT_ROUNDS = 3
DEFAULT_CONCURRENCY = 32
WARM_UP = 500  # notifications before the timed rounds; the one certificate fetch happens here
REGION = "us-east-1"
SNS_HOST = f"sns.{REGION}.amazonaws.com"
CERT_PATH = "/SimpleNotificationService-be7c4be7c4be7c4be7c4be7c4be7c4b0.pem"
TOPIC_ARN = f"arn:aws:sns:{REGION}:123456789012:bench-ses-events"
SENDER = "Shop <noreply@example.com>"
REQUEST_TIMEOUT_S = 30.0
KEEP_ALIVE_S = 2.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Round:
    notifications: int
    seconds: float
    api_cpu_seconds: float
    database_cpu_seconds: float  # the PostgreSQL backends serving the bench's database
    client_cpu_seconds: float  # this process: posting, and reading the answers
    load_average: float  # the machine's, over the last minute, at the end of the round

    @property
    def rate(self) -> float:
        return self.notifications / self.seconds

    def ms_per_notification(self, cpu_seconds: float) -> float:
        return cpu_seconds * 1000 / self.notifications


@dataclass(frozen=True)
class Outcome:
    rounds: list[Round]
    certificate_fetches: int
    proxy_tunnels: int
    stored_events: int
    delivered_requests: int
    requests: int
    concurrency: int


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        _require_loopback(args.postgres)
        if not SES_SENDER.exists():
            raise BenchError(f"{SES_SENDER} not found: install the project (make test or pip -e .)")
        with (
            tempfile.TemporaryDirectory(prefix="ses-sender-bench-sns-") as directory,
            postgres_database(args.postgres) as database_url,
        ):
            outcome = asyncio.run(
                run(Path(directory), database_url, args.requests, args.rounds, args.concurrency)
            )
    except BenchError as error:
        print(f"bench.sns_ingest: {error}", file=sys.stderr)
        return 1
    print(format_report(outcome))
    if outcome.certificate_fetches != 1:
        print("bench.sns_ingest: the certificate was fetched more than once", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sns_ingest",
        description="SES notifications verified and stored per second by one `ses-sender api` "
        "process on PostgreSQL.",
    )
    parser.add_argument(
        "--requests",
        type=positive,
        default=DEFAULT_REQUESTS,
        help=f"notifications per round, one per request (default: {DEFAULT_REQUESTS})",
    )
    parser.add_argument(
        "--rounds", type=positive, default=DEFAULT_ROUNDS, help="timed rounds (default: 3)"
    )
    parser.add_argument(
        "--concurrency",
        type=positive,
        default=DEFAULT_CONCURRENCY,
        help=f"requests in flight (default: {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES),
        metavar="DSN",
        help="an admin connection on a loopback server; the bench creates and drops its own "
        f"database there (default: ${POSTGRES_ENV} or {DEFAULT_POSTGRES})",
    )
    return parser


async def run(
    workdir: Path, database_url: str, requests: int, rounds: int, concurrency: int
) -> Outcome:
    """Everything against the empty database at `database_url`, in `workdir`."""
    signing = self_signed()
    host, proxy, ca_file = await _certificate_host(workdir, signing)
    try:
        environment = {
            **service_environment(database_url, workdir, max_recipients=requests),
            "SNS_TOPIC_ARNS": TOPIC_ARN,
            "HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}",
            "NO_PROXY": "127.0.0.1,localhost",
            "SSL_CERT_FILE": str(ca_file),
        }
        if "PYTHONPATH" in os.environ:  # a checkout run without installing it
            environment["PYTHONPATH"] = os.environ["PYTHONPATH"]
        await _migrate(environment, workdir)
        with api_process(environment, workdir) as server:
            request_ids = await _queue_requests(server.base_url, requests)
            await _mark_sent(database_url, request_ids)
            timed = await _post_rounds(
                server.base_url,
                CpuMeter(server.process.pid, urlsplit(database_url).path.lstrip("/")),
                signing,
                request_ids,
                rounds,
                concurrency,
            )
        stored, delivered = await _count_stored(database_url)
    finally:
        await proxy.stop()
        await host.stop()
    expected = WARM_UP + requests * rounds
    if stored != expected or delivered != requests:
        raise BenchError(f"stored {stored} of {expected} events, {delivered} requests delivered")
    return Outcome(
        rounds=timed,
        certificate_fetches=host.fetches,
        proxy_tunnels=len(proxy.tunnels),
        stored_events=stored,
        delivered_requests=delivered,
        requests=requests,
        concurrency=concurrency,
    )


async def _certificate_host(
    workdir: Path, signing: KeyPair
) -> tuple[CertificateHost, ConnectProxy, Path]:
    ca = tls_ca()
    server = tls_server(ca, names=[SNS_HOST])
    (workdir / "ca.pem").write_bytes(ca.cert_pem)
    (workdir / "host.pem").write_bytes(server.cert_pem)
    (workdir / "host.key").write_bytes(server.key_pem)
    host = CertificateHost(
        path=CERT_PATH,
        pem=signing.cert_pem,
        cert_file=workdir / "host.pem",
        key_file=workdir / "host.key",
    )
    await host.start()
    proxy = ConnectProxy(host.port)
    await proxy.start()
    return host, proxy, workdir / "ca.pem"


async def _migrate(environment: dict[str, str], workdir: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        str(SES_SENDER),
        "migrate",
        env=environment,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await process.communicate()
    if process.returncode != 0:
        raise BenchError(f"ses-sender migrate failed: {err.decode()[-2000:]}")


async def _queue_requests(base_url: str, count: int) -> list[int]:
    body = {
        "messages": [
            {
                "topicId": "bench-sns",
                "emails": [f"user{index}@example.com" for index in range(count)],
                "subject": "Benchmark",
                # Far in the future: no worker runs, but the rows must not look due either.
                "scheduledAt": "2099-01-01T00:00:00Z",
                "content": "<p>SNS ingestion benchmark</p>",
            }
        ]
    }
    async with httpx.AsyncClient(base_url=base_url, timeout=120, trust_env=False) as client:
        response = await client.post("/v1/messages", json=body, headers={"x-api-key": API_KEY})
    if response.status_code != 200:
        raise BenchError(f"POST /v1/messages answered {response.status_code}: {response.text}")
    ids: list[int] = response.json()["messages"][0]["requestIds"]
    return ids


async def _mark_sent(database_url: str, request_ids: list[int]) -> None:
    """As the worker would have: status Sent, an SES message id, a sent time."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            # The address is renamed after the id, as `delivery_notification` names it.
            "UPDATE email_requests SET status = 2, message_id = 'bench-' || id, sent_at = now(), "
            "\"to\" = 'user' || id || '@example.com', "
            "recipient_key = 'user' || id || '@example.com' "
            "WHERE id = ANY($1::bigint[])",
            request_ids,
        )
    finally:
        await connection.close()


async def _count_stored(database_url: str) -> tuple[int, int]:
    connection = await asyncpg.connect(database_url)
    try:
        stored = await connection.fetchval("SELECT count(*) FROM email_results")
        delivered = await connection.fetchval(
            "SELECT count(*) FROM email_requests WHERE delivered_at IS NOT NULL"
        )
    finally:
        await connection.close()
    return int(stored), int(delivered)


def delivery_notification(request_id: int, signing: KeyPair) -> bytes:
    """A signed SNS Notification carrying an SES Delivery event, as SES publishes it."""
    now = sns_timestamp(datetime.now(UTC))
    address = f"user{request_id}@example.com"
    message_id = f"bench-{request_id}"
    event = {
        "eventType": "Delivery",
        "mail": {
            "timestamp": now,
            "source": SENDER,
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.com",
            "sendingAccountId": "123456789012",
            "messageId": message_id,
            "destination": [address],
            "headersTruncated": False,
            "headers": [
                {"name": "From", "value": SENDER},
                {"name": "To", "value": address},
                {"name": "Subject", "value": "Benchmark"},
                {"name": "MIME-Version", "value": "1.0"},
                {"name": "Content-Type", "value": 'multipart/alternative; boundary="b1"'},
            ],
            "commonHeaders": {
                "from": [SENDER],
                "to": [address],
                "messageId": message_id,
                "subject": "Benchmark",
            },
            "tags": {
                "ses:configuration-set": ["bench"],
                "ses:source-ip": ["192.0.2.10"],
                "ses:from-domain": ["example.com"],
                "ses:caller-identity": ["ses-sender"],
                "ses:outgoing-ip": ["198.51.100.7"],
                "ses-sender-request-id": [str(request_id)],
                "ses-sender-topic": ["bench-sns"],
            },
        },
        "delivery": {
            "timestamp": now,
            "processingTimeMillis": 1_200,
            "recipients": [address],
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "a8-30.smtp-out.amazonses.com",
            "remoteMtaIp": "198.51.100.7",
        },
    }
    envelope = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC_ARN,
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(event, separators=(",", ":")) + "\n",
        "Timestamp": now,
        "SigningCertURL": f"https://{SNS_HOST}{CERT_PATH}",
        "UnsubscribeURL": f"https://{SNS_HOST}/?Action=Unsubscribe&SubscriptionArn={TOPIC_ARN}:1",
    }
    return json.dumps(sign(envelope, signing.key, version="2")).encode()


async def _post_rounds(
    base_url: str,
    meter: CpuMeter,
    signing: KeyPair,
    request_ids: list[int],
    rounds: int,
    concurrency: int,
) -> list[Round]:
    # Everything is signed first, so the rounds follow each other without a pause.
    warm_up = [
        delivery_notification(request_ids[i % len(request_ids)], signing) for i in range(WARM_UP)
    ]
    signed = [
        [delivery_notification(request_id, signing) for request_id in request_ids]
        for _ in range(rounds)
    ]
    # Idle connections are dropped before the server's keep-alive timeout (5 s) could close one
    # under a request.
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=KEEP_ALIVE_S)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(
        base_url, connector=connector, timeout=timeout, trust_env=False
    ) as session:
        await _post_all(session, warm_up, concurrency)
        timed: list[Round] = []
        for number, bodies in enumerate(signed):
            api_before, database_before = meter.read()
            client_before = time.process_time()
            started = time.perf_counter()
            await _post_all(session, bodies, concurrency)
            seconds = time.perf_counter() - started
            client_cpu = time.process_time() - client_before
            api_after, database_after = meter.read()
            result = Round(
                len(bodies),
                seconds,
                api_cpu_seconds=api_after - api_before,
                database_cpu_seconds=sum(
                    used - database_before.get(pid, 0.0) for pid, used in database_after.items()
                ),
                client_cpu_seconds=client_cpu,
                load_average=os.getloadavg()[0],
            )
            print(
                f"  round {number + 1}: {result.rate:,.0f} notifications/s",
                file=sys.stderr,
                flush=True,
            )
            timed.append(result)
    return timed


async def _post_all(session: aiohttp.ClientSession, bodies: list[bytes], concurrency: int) -> None:
    queue = iter(bodies)

    async def post_some() -> None:
        for body in queue:
            await _post(session, body)

    await asyncio.gather(*(post_some() for _ in range(concurrency)))


async def _post(session: aiohttp.ClientSession, body: bytes) -> None:
    headers = {
        "content-type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": "Notification",
    }
    async with session.post("/v1/events/results", data=body, headers=headers) as response:
        answer: Any = await response.json(content_type=None)
        if response.status != 200 or answer != {"message": "ok"}:
            raise BenchError(f"POST /v1/events/results answered {response.status}: {answer}")


class CpuMeter:
    """CPU time used so far by the API process and by the PostgreSQL backends of one database.

    The server is shared (other databases, other clients), so only the backends whose title
    names the bench's database are counted: `postgres: <user> <database> <client> <state>`.
    """

    def __init__(self, api_pid: int, database: str) -> None:
        self._api_pid = api_pid
        self._marker = f" {database} ".encode()

    def read(self) -> tuple[float, dict[int, float]]:
        backends: dict[int, float] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes()
                if title.startswith(b"postgres:") and self._marker in title:
                    backends[int(entry.name)] = cpu_seconds(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue  # ended while being read
        return cpu_seconds(self._api_pid), backends


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def format_report(outcome: Outcome) -> str:
    rates = [round_.rate for round_ in outcome.rounds]
    lines = [
        f"SNS ingestion: signed SES Delivery notifications to one `ses-sender api` process on "
        f"PostgreSQL, {outcome.concurrency} in flight, {outcome.requests:,} per round after "
        f"{WARM_UP} to warm up",
        "",
        f"CPU per notification: the API process, the PostgreSQL backends serving it, this "
        f"client; load: the machine's 1-minute load average ({os.cpu_count()} CPUs)",
        "",
        "round  notifications/s  seconds  API CPU  PostgreSQL CPU  client CPU  load",
        "-----  ---------------  -------  -------  --------------  ----------  ----",
    ]
    for number, round_ in enumerate(outcome.rounds, 1):
        lines.append(
            f"{number:>5}  {round_.rate:>15,.0f}  {round_.seconds:>7.2f}  "
            f"{round_.ms_per_notification(round_.api_cpu_seconds):>4.2f} ms  "
            f"{round_.ms_per_notification(round_.database_cpu_seconds):>11.2f} ms  "
            f"{round_.ms_per_notification(round_.client_cpu_seconds):>7.2f} ms  "
            f"{round_.load_average:>4.1f}"
        )
    lines += [
        "",
        f"median {statistics.median(rates):,.0f} notifications/s "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f})",
        f"certificate fetches: {outcome.certificate_fetches} "
        f"(proxy tunnels: {outcome.proxy_tunnels})",
        f"stored: {outcome.stored_events:,} events, {outcome.delivered_requests:,} requests "
        "delivered",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
