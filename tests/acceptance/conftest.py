"""Acceptance tests run the real `ses-sender` console script and processes: `serve`, `worker`,
`migrate`, `setup-aws` and `doctor`, against stand-ins for SES (the stub) and AWS (moto,
through its complement)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest

from tests.support.aws_setup import CONFIG_SET, PUBLIC_HOST, SENDER, Cli
from tests.support.cli import run_cli
from tests.support.fixtures import (
    fake_aws_env,
    moto,
    moto_complement,
    moto_complement_server,
    moto_server,
    ses_stub,
    start_worker,
)
from tests.support.moto_complement import MotoComplement
from tests.support.moto_server import REGION

__all__ = [
    "fake_aws_env",
    "moto",
    "moto_complement",
    "moto_complement_server",
    "moto_server",
    "ses_stub",
    "start_worker",
]


@pytest.fixture
def cli_env(moto_complement: MotoComplement, tmp_path: Path) -> dict[str, str]:
    """What the commands read: every AWS endpoint is the complement, the database a new file."""
    return {
        "AWS_ENDPOINT_URL": moto_complement.url,
        "AWS_REGION": REGION,
        "SES_CONFIG_SET": CONFIG_SET,
        "SERVER_HOST": PUBLIC_HOST,
        "EMAIL_SENDER": SENDER,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
    }


@pytest.fixture
def cli(cli_env: dict[str, str], tmp_path: Path) -> Cli:
    """`cli("setup-aws", "--dry-run", SES_CONFIG_SET="other")`: run the console script."""

    def invoke(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), tmp_path, **{**cli_env, **env})

    return invoke


@pytest.fixture
def sesv2(moto_complement: MotoComplement) -> Any:
    client = boto3.client("sesv2", region_name=REGION, endpoint_url=moto_complement.url)
    yield client
    client.close()


@pytest.fixture
def sns(moto_complement: MotoComplement) -> Any:
    client = boto3.client("sns", region_name=REGION, endpoint_url=moto_complement.url)
    yield client
    client.close()
