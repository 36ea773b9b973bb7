"""Which errors mean the database is away (down, unreachable, locked, full, read-only), as
opposed to a statement that is wrong, and how to say the cause in one line.

A line about an outage names the driver's exception and its first line of text, never the
statement or its parameters: SQLAlchemy's own message carries both, and the parameters are
addresses and subjects.
"""

from __future__ import annotations

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# Caught around anything that talks to the database. OSError: a refused or timed-out connect
# reaches us untranslated. PoolTimeout: every pooled connection is busy.
DATABASE_ERRORS = (DBAPIError, OSError, PoolTimeout)

# The statement, not the database, is at fault: trying again would fail the same way.
_STATEMENT_FAULTS = (IntegrityError, ProgrammingError, DataError)

MAX_REASON_CHARS = 200


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
