"""Reusable fixtures for the SES stand-ins and worker processes. Import the ones you need into
a conftest.py:

from tests.support.fixtures import fake_aws_env, moto, moto_server, ses_stub

__all__ = ["fake_aws_env", "moto", "moto_server", "ses_stub"]

(and `moto_complement` with `moto_complement_server`, for moto plus what it lacks, `ses` for an
SES transport to the stub, and `start_worker` for real `ses-sender worker` processes)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ses_sender.transports.ses import SesTransport
from tests.support.moto_complement import MotoComplement, run_moto_complement
from tests.support.moto_server import FAKE_AWS_ENV, MotoServer, run_moto_server
from tests.support.ses_stub import SesStub
from tests.support.worker_processes import StartWorker, WorkerProcess


@pytest.fixture
def fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials for in-process botocore: no profile files, metadata service or proxy."""
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SESV2",
        "AWS_ENDPOINT_URL_SNS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def ses_stub(fake_aws_env: None) -> AsyncIterator[SesStub]:
    """A fresh SES v2 stub on a free loopback port; `ses_stub.url` is the endpoint URL."""
    stub = SesStub()
    await stub.start()
    try:
        yield stub
    finally:
        await stub.stop()


@pytest.fixture
async def ses(ses_stub: SesStub) -> AsyncIterator[SesTransport]:
    """The SES transport, sending to the stub."""
    transport = SesTransport(
        "us-east-1",
        access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
        secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=ses_stub.url,
        timeout_s=5.0,
    )
    yield transport
    await transport.close()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto_server subprocess for the whole session (it takes a second or two to start)."""
    with run_moto_server() as server:
        yield server


@pytest.fixture
def moto(moto_server: MotoServer, fake_aws_env: None) -> MotoServer:
    """The session's moto_server, emptied (no identities, no sent mail) for this test."""
    moto_server.reset()
    return moto_server


@pytest.fixture(scope="session")
def moto_complement_server(moto_server: MotoServer) -> Iterator[MotoComplement]:
    with run_moto_complement(moto_server.url) as complement:
        yield complement


@pytest.fixture
def moto_complement(moto: MotoServer, moto_complement_server: MotoComplement) -> MotoComplement:
    """moto, emptied, behind the complement (see moto_complement.py); `url` is the endpoint."""
    moto_complement_server.reset()
    return moto_complement_server


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """Starts `ses-sender worker` processes (logs in tmp_path); kills any left at the end."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.ensure_gone()
