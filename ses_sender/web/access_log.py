"""The access log without bearer tokens: the open pixel's, click links' and unsubscribe links'
tokens let anyone holding them act for a recipient, so a log line keeps only the route."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "[token]"

# /v1/o/<token> and /v1/c/<token> (pixel and click links), /v1/unsubscribe/<token>, also as
# near misses the app answers 404 (//v1/c/..., /V1/C/...): the token in them may be real.
_TOKEN_PATH = re.compile(r"^(/+v1/+(?:o|c|unsubscribe)/)[^?]+", re.IGNORECASE)
# ?t=<token> (the seed's pixel URL) and ?token=<token>, wherever they are in the query, and
# however the name is spelt: T=, t;=, t%3D=.
_QUERY_PARAMETER = re.compile(r"([?&])([^&]*)")
_NAME = re.compile(r"[a-z]*")
_TOKEN_NAMES = frozenset({"t", "token"})


def redact_tokens(path_with_query: str) -> str:
    path = _TOKEN_PATH.sub(rf"\g<1>{REDACTED}", path_with_query)
    return _QUERY_PARAMETER.sub(_redact_parameter, path)


def _redact_parameter(match: re.Match[str]) -> str:
    separator, parameter = match.groups()
    name, equals, _ = parameter.partition("=")
    spelt = _NAME.match(unquote(name).lower())
    if spelt is None or spelt.group() not in _TOKEN_NAMES:
        return match.group()
    return f"{separator}{name}={REDACTED}" if equals else f"{separator}{REDACTED}"


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
