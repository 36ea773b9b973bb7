"""The SES message tags on every email we send, read back from SES events to find the request."""

from __future__ import annotations

import re

REQUEST_ID_TAG = "ses-sender-request-id"
TOPIC_TAG = "ses-sender-topic"
MAX_TAG_VALUE_LENGTH = 256

_NOT_TAG_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def ses_tags(request_id: int, topic_id: str) -> tuple[tuple[str, str], ...]:
    """SES tag values allow only letters, digits, '_' and '-'."""
    tags = [(REQUEST_ID_TAG, str(request_id))]
    topic = _NOT_TAG_SAFE.sub("_", topic_id)[:MAX_TAG_VALUE_LENGTH]
    if topic:
        tags.append((TOPIC_TAG, topic))
    return tuple(tags)
