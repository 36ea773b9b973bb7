"""The access log without bearer tokens: the open pixel's, click links' and unsubscribe links'
tokens let anyone holding them act for a recipient, so no log line may hold one.

Matching where tokens sit (`/v1/c/<token>`, `?t=<token>`) missed every spelling the router or
a client tolerates (`/./v1/c/`, `?+t=`, `;t=`, `next=/v1/c/<token>`). So the rule is about
the token itself, wherever it is: every run of the tokens' alphabet (base64url; `%` for one
percent-encoded) as long as the shortest token is replaced. Method, status and the path's shape
stay; an id or a name that long is hidden too, which costs the log little.
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "[token]"

# An open or unsubscribe token (tracking/tokens.py): 36 bytes, 48 characters of base64url; a
# click token is longer.
SHORTEST_TOKEN_CHARS = 48
_TOKEN_LIKE = re.compile(rf"[A-Za-z0-9_%-]{{{SHORTEST_TOKEN_CHARS},}}")


def redact_tokens(path_with_query: str) -> str:
    return _TOKEN_LIKE.sub(REDACTED, path_with_query)


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
