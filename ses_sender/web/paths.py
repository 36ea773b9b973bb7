"""Path parameters the features' routes share."""

from __future__ import annotations

from typing import Any

from fastapi import Path

MAX_ROW_ID = 2**63 - 1  # row ids are BIGINT: a larger number names no row
MAX_VERSION = 2**31 - 1  # versions are INTEGER


def row_id(description: str) -> Any:
    """A row id in the path: 1 to `MAX_ROW_ID`, anything else a 400 naming it."""
    return Path(ge=1, le=MAX_ROW_ID, description=description)
