"""The README's example request, byte for byte: a receiver can check its verifier against it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from ses_sender.webhooks.service import event_payload
from ses_sender.webhooks.signing import new_secret, signature, signature_v2

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_is_what_we_send_and_sign() -> None:
    body = event_payload(
        event_type="Bounce",
        request_id=123,
        topic_id="spring-sale",
        email="jane@example.net",
        occurred_at=datetime(2026, 1, 5, 10, 0, 2, tzinfo=UTC),
        details={
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": "jane@example.net", "status": "5.1.1"}],
            "timestamp": "2026-01-05T10:00:02.000Z",
        },
    ).encode()
    readme = README.read_text()
    shown = re.search(
        r"X-Ses-Sender-Timestamp: (\d+)\nX-Ses-Sender-Signature: (\S+)\n"
        r"X-Ses-Sender-Signature-V2: (\S+)\nX-Ses-Sender-Delivery: (\d+)\n",
        readme,
    )
    assert shown is not None

    assert f"\n{body.decode()}\n" in readme
    assert signature("whsec_example", int(shown[1]), body) == shown[2]
    assert signature_v2("whsec_example", int(shown[1]), shown[4], body) == shown[3]


def test_secrets_are_new_each_time() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(re.fullmatch(r"whsec_[0-9a-f]{64}", secret) for secret in secrets)
