from __future__ import annotations

import pytest

from tests.support.fixtures import fake_aws_env, moto, moto_server, ses_stub

__all__ = ["fake_aws_env", "moto", "moto_server", "ses_stub"]


@pytest.fixture(autouse=True)
def _no_real_aws(fake_aws_env: None) -> None:
    """Every transport test runs with fake credentials, no profile files and no metadata service."""
