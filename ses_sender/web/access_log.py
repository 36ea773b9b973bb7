"""The access log without bearer tokens: the open pixel's, click links' and unsubscribe links'
tokens let anyone holding them act for a recipient, so a log line keeps only the route."""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "[token]"

# /v1/o/<token> and /v1/c/<token> (pixel and click links), /v1/unsubscribe/<token>.
_TOKEN_PATH = re.compile(r"^(/v1/(?:o|c|unsubscribe)/)[^?]+")
# ?t=<token> (the seed's pixel URL) and ?token=<token>, wherever they are in the query.
_TOKEN_QUERY = re.compile(r"([?&](?:t|token)=)[^&]*")


def redact_tokens(path_with_query: str) -> str:
    path = _TOKEN_PATH.sub(rf"\g<1>{REDACTED}", path_with_query)
    return _TOKEN_QUERY.sub(rf"\g<1>{REDACTED}", path)


class RedactTokens(logging.Filter):
    """uvicorn logs (client, method, path with query, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_tokens(args[2]), *args[3:])
        return True


def redact_access_log() -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, RedactTokens) for existing in logger.filters):
        logger.addFilter(RedactTokens())
