"""Opaque page cursors: the sort key of a page's last row, encoded so clients do not parse it."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

from ses_sender.errors import InvalidInput
from ses_sender.text import NUL
from ses_sender.web.paths import MAX_ROW_ID

_SEPARATOR = "\n"  # in no key we page by: addresses and ISO times have no line breaks
_NOT_A_CURSOR = "cursor: not a cursor from a previous page"
_ROW_ID = re.compile(r"[0-9]{1,19}")  # a BIGINT has at most 19 digits


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(_SEPARATOR.join(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, parts: int) -> list[str]:
    """The parts `encode_cursor` was given; a 400 naming `cursor` for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, binascii.Error):
        decoded = None
    # No key we page by holds NUL, and PostgreSQL fails on it where SQLite would not.
    found = None if decoded is None or NUL in decoded else decoded.split(_SEPARATOR)
    if found is None or len(found) != parts:
        raise InvalidInput(_NOT_A_CURSOR)
    return found


def cursor_row_id(part: str) -> int:
    """A part `encode_cursor` was given as a stored row's id: 1 to the BIGINT's largest."""
    row_id = int(part) if _ROW_ID.fullmatch(part) else 0
    if not 0 < row_id <= MAX_ROW_ID:
        raise InvalidInput(_NOT_A_CURSOR)
    return row_id


def cursor_time(part: str) -> datetime:
    """A part `encode_cursor` was given as a stored row's time: aware, and a time in UTC, as
    every time we store is (an offset that takes it past year 1 or 9999 is no such time)."""
    try:
        found = datetime.fromisoformat(part)
        if found.tzinfo is None:
            raise ValueError(part)
        return found.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(_NOT_A_CURSOR) from None
