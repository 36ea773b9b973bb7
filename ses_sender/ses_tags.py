"""The SES message tags on every email we send, read back from SES events to find the request."""

from __future__ import annotations

import functools
import re

REQUEST_ID_TAG = "ses-sender-request-id"
TOPIC_TAG = "ses-sender-topic"
MAX_TAG_VALUE_LENGTH = 256

_NOT_TAG_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def ses_tags(request_id: int, topic_id: str) -> tuple[tuple[str, str], ...]:
    topic = _tag_value(topic_id)
    if not topic:
        return ((REQUEST_ID_TAG, str(request_id)),)
    return ((REQUEST_ID_TAG, str(request_id)), (TOPIC_TAG, topic))


@functools.lru_cache(maxsize=256)  # one per topic, for every email of a campaign
def _tag_value(text: str) -> str:
    """SES tag values allow only letters, digits, '_' and '-'."""
    return _NOT_TAG_SAFE.sub("_", text)[:MAX_TAG_VALUE_LENGTH]
