"""Row ids and versions the features' routes share, in paths and in bodies: bounded to the
database's integer columns, so a larger number is a 400 naming it, never a database error."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import Field

MAX_ROW_ID = 2**63 - 1  # row ids are BIGINT: a larger number names no row
MAX_VERSION = 2**31 - 1  # versions are INTEGER

RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
Version = Annotated[int, Field(ge=1, le=MAX_VERSION)]


def row_id(description: str) -> Any:
    """A row id in the path: 1 to `MAX_ROW_ID`, anything else a 400 naming it."""
    return Path(ge=1, le=MAX_ROW_ID, description=description)
