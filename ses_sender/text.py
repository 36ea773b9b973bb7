"""Rules for text the service takes from outside and later puts in a database or a header."""

from __future__ import annotations

# Every character `str.splitlines` breaks a line at: the mail libraries do too, so a header
# holding one fails when the email is built, long after the request was accepted.
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")

# PostgreSQL text cannot hold it; SQLite would, and the two must answer alike.
NUL = "\x00"


def has_line_break(text: str) -> bool:
    return not LINE_BREAKS.isdisjoint(text)
