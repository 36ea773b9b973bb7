"""Opaque page cursors: the sort key of a page's last row, encoded so clients do not parse it."""

from __future__ import annotations

import base64
import binascii

from ses_sender.errors import InvalidInput
from ses_sender.text import NUL

_SEPARATOR = "\n"  # in no key we page by: addresses and ISO times have no line breaks


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
        raise InvalidInput("cursor: not a cursor from a previous page")
    return found
