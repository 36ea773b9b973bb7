"""`ses-sender send` and `ses-sender status`, run as a person runs them, against a real
`ses-sender serve`: a CSV queued in chunks, resumed after the network failed mid-run without a
duplicate, bad files refused before anything is sent, the service's errors shown."""

from __future__ import annotations

import asyncio
import resource
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ses_sender.composition import Runtime
from ses_sender.models import Content, Request, RequestStatus
from tests.support.cli import SCRIPT, run_cli_within
from tests.support.cutting_proxy import CuttingProxy
from tests.support.moto_server import subprocess_env
from tests.support.ports import free_port
from tests.support.service_process import SERVICE_KEY, RunningService, running_service

ADDRESSES = 250
CHUNK = "100"

# A service and up to three runs of the command each: seconds apiece on a busy machine.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def service(
    database_url: str,
    runtime: Runtime,  # empties the tables afterwards
    tmp_path: Path,
) -> AsyncIterator[RunningService]:
    async with running_service(database_url, tmp_path) as service:
        yield service


@pytest.fixture
def mail(tmp_path: Path) -> Path:
    html = tmp_path / "mail.html"
    html.write_text("<h1>Spring sale</h1><p>Everything 20% off.</p>", encoding="utf-8")
    return html


def write_csv(path: Path, emails: list[str], *, column: str = "email") -> Path:
    """A spreadsheet's export: the addresses in the second column, names with commas quoted."""
    lines = [f"name,{column},city"]
    lines += [f'"Person, {i}",{email},Seoul' for i, email in enumerate(emails)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def people(count: int) -> list[str]:
    return [f"person{i}@example.com" for i in range(count)]


async def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """In a thread: the proxy serving the command runs in this loop. `status --watch` waits for
    the service to send, which on a loaded machine takes a while."""
    return await asyncio.to_thread(run_cli_within, 180, list(args), cwd, **env)


def send_args(topic: str, mail: Path, recipients: Path, *more: str) -> list[str]:
    return [
        "send",
        "--topic",
        topic,
        "--subject",
        "Spring sale",
        "--html",
        str(mail),
        "--to-csv",
        str(recipients),
        "--chunk-size",
        CHUNK,
        *more,
    ]


async def recipients_of(runtime: Runtime, topic: str) -> list[str]:
    async with runtime.sessionmaker() as session:
        return list(await session.scalars(select(Request.to).where(Request.topic_id == topic)))


async def test_send_queues_every_address_once_and_shows_the_topic(
    service: RunningService, runtime: Runtime, mail: Path, tmp_path: Path
) -> None:
    recipients = write_csv(tmp_path / "list.csv", people(ADDRESSES))
    text = tmp_path / "mail.txt"
    text.write_text("Spring sale: everything 20% off.\n", encoding="utf-8")

    done = await cli(
        tmp_path,
        *send_args("spring", mail, recipients, "--text", str(text)),
        SES_SENDER_URL=service.url,
        SES_SENDER_API_KEY=SERVICE_KEY,
    )

    assert done.returncode == 0, done.stderr
    assert f"queued {ADDRESSES} emails in 3 chunks" in done.stdout
    assert f"of {ADDRESSES} done" in done.stdout  # the topic's progress, at the end
    assert sorted(await recipients_of(runtime, "spring")) == sorted(people(ADDRESSES))
    async with runtime.sessionmaker() as session:
        texts = await session.scalars(
            select(Content.text).join(Request).where(Request.topic_id == "spring").distinct()
        )
        assert list(texts) == ["Spring sale: everything 20% off.\n"]


async def test_an_interrupted_send_resumes_without_duplicates(
    service: RunningService, runtime: Runtime, mail: Path, tmp_path: Path
) -> None:
    recipients = write_csv(tmp_path / "list.csv", people(ADDRESSES))
    # The first chunk is answered; the second reaches the service, which stores it, but its
    # answer is lost with the connection; then the network is down.
    proxy = CuttingProxy(service.port, marker=b"POST /v1/messages ", answered=1)
    await proxy.start()
    try:
        cut = await cli(
            tmp_path,
            *send_args("resumed", mail, recipients),
            "--url",
            f"http://127.0.0.1:{proxy.port}",
            "--api-key",
            SERVICE_KEY,
        )
    finally:
        await proxy.stop()

    assert cut.returncode == 1
    assert "cannot reach the service" in cut.stderr
    assert "100 of 250 emails (1 chunks) are queued" in cut.stdout
    assert len(await recipients_of(runtime, "resumed")) == 200  # stored, never acknowledged

    resumed = await cli(
        tmp_path,
        *send_args("resumed", mail, recipients),
        "--url",
        service.url,
        "--api-key",
        SERVICE_KEY,
    )

    assert resumed.returncode == 0, resumed.stderr
    assert sorted(await recipients_of(runtime, "resumed")) == sorted(people(ADDRESSES))


async def test_a_bad_file_is_refused_with_its_line_before_anything_is_sent(
    service: RunningService, runtime: Runtime, mail: Path, tmp_path: Path
) -> None:
    emails = [*people(3), "bob@", *people(300)[3:]]
    invalid = write_csv(tmp_path / "invalid.csv", emails)
    no_column = write_csv(tmp_path / "other.csv", people(3), column="mail")
    target = ["--url", service.url, "--api-key", SERVICE_KEY]

    bad_address = await cli(tmp_path, *send_args("bad", mail, invalid, *target))
    missing = await cli(tmp_path, *send_args("bad", mail, no_column, *target))
    no_file = await cli(tmp_path, *send_args("bad", mail, tmp_path / "nope.csv", *target))

    assert bad_address.returncode == 2
    assert "line 5: invalid email address: bob@" in bad_address.stderr  # line 1 names columns
    assert missing.returncode == 2
    assert "line 1: no column 'email' (the columns are 'name', 'mail', 'city')" in missing.stderr
    assert no_file.returncode == 2
    assert "nope.csv: No such file or directory" in no_file.stderr
    assert await recipients_of(runtime, "bad") == []


def test_a_file_without_line_ends_is_refused_in_bounded_memory(mail: Path, tmp_path: Path) -> None:
    """Attack report finding 7: /dev/zero grew the command to gigabytes. Under a 2 GiB address
    space it either stops at its first line or fails for memory; nothing is sent either way."""
    address_space = 2 * 1024**3

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    target = ["--url", "http://127.0.0.1:9", "--api-key", "k"]
    result = subprocess.run(
        [str(SCRIPT), *send_args("zero", mail, Path("/dev/zero")), *target],
        cwd=tmp_path,
        env=subprocess_env(),
        preexec_fn=limited,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "ses-sender: line 1: longer than 1,048,576 characters; is this a CSV file?"
    )


async def test_the_services_refusals_and_absence_are_told(
    service: RunningService, mail: Path, tmp_path: Path
) -> None:
    recipients = write_csv(tmp_path / "list.csv", people(3))

    wrong_key = await cli(
        tmp_path, *send_args("t", mail, recipients, "--url", service.url, "--api-key", "nope")
    )
    nobody = await cli(
        tmp_path, "status", "t", "--url", f"http://127.0.0.1:{free_port()}", "--api-key", "k"
    )
    bad_time = await cli(
        tmp_path,
        *send_args("t", mail, recipients, "--url", service.url, "--api-key", SERVICE_KEY),
        "--scheduled-at",
        "tomorrow",
    )

    assert wrong_key.returncode == 1
    assert "the service answered 401: Unauthorized: Invalid API key" in wrong_key.stderr
    assert nobody.returncode == 1
    assert "cannot reach the service at http://127.0.0.1:" in nobody.stderr
    assert bad_time.returncode == 1
    assert "the service answered 400: messages[0].scheduledAt" in bad_time.stderr


async def test_status_shows_progress_and_funnel_of_the_local_service(
    service: RunningService, runtime: Runtime, mail: Path, tmp_path: Path
) -> None:
    # No --url, no key: the local service, as this directory's settings describe it.
    local = {"SERVER_PORT": str(service.port), "API_KEY": SERVICE_KEY}
    recipients = write_csv(tmp_path / "list.csv", people(30))
    sent = await cli(tmp_path, *send_args("watched", mail, recipients), **local)
    assert sent.returncode == 0, sent.stderr

    watched = await cli(tmp_path, "status", "watched", "--watch", "--interval", "0.2", **local)

    assert watched.returncode == 0, watched.stderr
    async with runtime.sessionmaker() as session:
        sent_rows = await session.scalar(
            select(func.count()).where(
                Request.topic_id == "watched", Request.status == RequestStatus.SENT
            )
        )
    assert sent_rows == 30  # --watch returned once nothing was left to send
    shown = await cli(tmp_path, "status", "watched", **local)
    assert shown.returncode == 0, shown.stderr
    assert "30 of 30 done" in shown.stdout
    for step in ("sent", "delivered", "opened", "clicked", "bounced", "complained"):
        assert step in shown.stdout
