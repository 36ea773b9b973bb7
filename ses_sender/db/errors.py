"""Which errors mean the database is away (down, unreachable, locked, full, read-only), as
opposed to a statement that is wrong, and how to say the cause in one line.

A line about an outage names the driver's exception and its first line of text, never the
statement or its parameters: SQLAlchemy's own message carries both, and the parameters are
addresses and subjects.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# Caught around anything that talks to the database. OSError: a refused or timed-out connect
# reaches us untranslated. PoolTimeout: every pooled connection is busy.
DATABASE_ERRORS = (DBAPIError, OSError, PoolTimeout)

# The statement, not the database, is at fault: trying again would fail the same way.
_STATEMENT_FAULTS = (IntegrityError, ProgrammingError, DataError)

MAX_REASON_CHARS = 200
# While the database is away, each place that meets the outage says so once in this long.
OUTAGE_LOG_INTERVAL_S = 60.0


def is_outage(error: BaseException) -> bool:
    """Whether `error` says the database cannot serve us now, so that trying again later can
    succeed."""
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or not isinstance(error, _STATEMENT_FAULTS)
    return isinstance(error, (OSError, PoolTimeout))


def describe(error: BaseException) -> str:
    """`<driver exception>: <its first line>`, e.g. `OperationalError: database is locked`."""
    cause: BaseException = error
    if isinstance(error, DBAPIError) and error.orig is not None:
        cause = error.orig
    # SQLAlchemy's asyncpg adapter raises its own class from asyncpg's: name asyncpg's.
    while cause.__cause__ is not None and type(cause).__module__.startswith("sqlalchemy"):
        cause = cause.__cause__
    text = str(cause).strip().splitlines()
    reason = text[0] if text else ""
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return f"{type(cause).__name__}: {reason}" if reason else type(cause).__name__


class OutageLog:
    """Logs an outage once an interval for each place that meets it, not at every try: while
    the database is away the worker, the recorders and every request would otherwise write the
    same line several times a second (and send each ERROR to Sentry). A line after a quiet
    spell says how many it stands for."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval_s: float = OUTAGE_LOG_INTERVAL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._monotonic = monotonic
        self._said_at: dict[str, float] = {}
        self._unsaid: dict[str, int] = {}

    def log(self, level: int, place: str, message: str, *args: object) -> None:
        """`message % args` at `level`, unless `place` said so less than an interval ago."""
        now = self._monotonic()
        if now - self._said_at.get(place, -math.inf) < self._interval_s:
            self._unsaid[place] = self._unsaid.get(place, 0) + 1
            return
        self._said_at[place] = now
        unsaid = self._unsaid.pop(place, 0)
        if unsaid:
            message += " (and %d times more since the last such line)"
            args = (*args, unsaid)
        self._logger.log(level, message, *args)

    def failed(self, place: str, error: BaseException, message: str, *args: object) -> None:
        """`message % (*args, cause)`: once an interval, without a traceback, when `error` is an
        outage; otherwise each time, at ERROR with the traceback, as a fault to look into."""
        if is_outage(error):
            self.log(logging.WARNING, place, message, *args, describe(error))
        else:
            self._logger.error(message, *args, describe(error), exc_info=error)
