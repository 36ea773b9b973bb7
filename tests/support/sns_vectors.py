"""The real AWS-signed SNS messages kept in `vectors/sns/` (its README says where they are from)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_DIR = Path(__file__).resolve().parent / "vectors" / "sns"
VECTOR_CERT = "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"
VECTOR_FILES = (
    "ses-event-complaint-v1-with-subject.json",
    "ses-notification-bounce-v1-no-subject.json",
    "plain-notification-v1.json",
    "plain-notification-v2-sha256.json",
)


def load_vector(vectors_dir: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((vectors_dir / name).read_bytes())
    return document
