"""Resilience tests run real `ses-sender worker` processes against the SES stub, and take away
what they depend on: the database, SES, their time to stop. Each asserts that nothing is lost
and nothing is sent twice beyond the documented bound, counting sends at the stub."""

from __future__ import annotations

from tests.support.fixtures import fake_aws_env, ses_stub, start_worker

__all__ = ["fake_aws_env", "ses_stub", "start_worker"]
