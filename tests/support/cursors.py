"""Cursors no previous page made: each list endpoint answers them 400 "not a cursor"."""

from __future__ import annotations

from ses_sender.cursor import encode_cursor

NOT_A_CURSOR = "cursor: not a cursor from a previous page"

# Aware times Python reads, but that fall before year 1 or after 9999 in UTC.
OFF_THE_CALENDAR = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")
# Row ids past a BIGINT, and more digits than Python turns into an int at all.
PAST_BIGINT = (str(2**63), "9" * 5_000)


def time_cursors(second_part: str) -> list[str]:
    """Cursors of a (time, `second_part`) key with times off the calendar."""
    return [encode_cursor(time, second_part) for time in OFF_THE_CALENDAR]
