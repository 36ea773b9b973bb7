from __future__ import annotations

from tests.support.fixtures import fake_aws_env, ses, ses_stub

__all__ = ["fake_aws_env", "ses", "ses_stub"]
