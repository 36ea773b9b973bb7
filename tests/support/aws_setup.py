"""What `setup-aws` and `doctor` are run with in the tests: one configuration set, its topic,
the public endpoint, and the type of the `cli` fixture that runs them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

CONFIG_SET = "marketing"
TOPIC_NAME = f"{CONFIG_SET}-ses-events"
PUBLIC_HOST = "https://mail.example.com"
ENDPOINT = f"{PUBLIC_HOST}/v1/events/results"
SENDER = "Shop <sender@example.com>"

# cli("setup-aws", "--dry-run", SES_CONFIG_SET="other"): the console script, run.
Cli = Callable[..., subprocess.CompletedProcess[str]]
