"""Recipients from a CSV file of any size, read in chunks with constant memory, each address
checked as the service checks it, so a bad line is named before anything is sent."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ses_sender.messages.addresses import parse_recipient

# A line longer than this is not a list of addresses (a binary file, /dev/zero): refused before
# it is read whole, so memory stays bounded whatever the file holds.
MAX_LINE_CHARS = 1024 * 1024


class InputProblem(Exception):
    """A file cannot be sent as it is; the message names the file or line and what is wrong."""


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    emails: list[str]
    first_line: int  # the line of the file its first address is on
    bytes_read: int  # of the file, up to the end of this chunk (for a progress bar)


def read_chunks(path: Path, column: str, chunk_size: int) -> Iterator[Chunk]:
    """The addresses of `column`, `chunk_size` at a time, in file order.

    The first row names the columns. Rows with nothing in any cell are skipped; a row with an
    empty or invalid address, or a missing column, is a InputProblem naming its line.
    """
    try:
        raw = path.open("rb")
    except OSError as error:
        raise InputProblem(f"{path}: {error.strerror}") from None
    with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        rows = csv.reader(_bounded_lines(text))
        try:
            position = _column_position(next(rows, None), column, path)
            emails: list[str] = []
            first_line = 0
            index = 0
            for row in rows:
                if not any(cell.strip() for cell in row):
                    continue
                line = rows.line_num
                emails.append(_address(row, position, column, line))
                first_line = first_line or line
                if len(emails) == chunk_size:
                    yield Chunk(index, emails, first_line, raw.tell())
                    emails, first_line, index = [], 0, index + 1
        except UnicodeDecodeError:
            raise InputProblem(f"{path}: not UTF-8 text") from None
        except csv.Error as error:
            raise InputProblem(f"line {rows.line_num}: {error}") from None
        if emails:
            yield Chunk(index, emails, first_line, raw.tell())


def _bounded_lines(text: io.TextIOWrapper) -> Iterator[str]:
    number = 0
    while line := text.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise InputProblem(
                f"line {number}: longer than {MAX_LINE_CHARS:,} characters; is this a CSV file?"
            )
        yield line


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as error:
        raise InputProblem(f"{path}: {error.strerror}") from None


def _column_position(header: list[str] | None, column: str, path: Path) -> int:
    if header is None:
        raise InputProblem(f"{path}: the file is empty (the first line names the columns)")
    names = [name.strip() for name in header]
    # Case does not tell columns apart here, so "email" and "Email" are the same one twice.
    wanted = column.casefold()
    positions = [number for number, name in enumerate(names, start=1) if name.casefold() == wanted]
    if len(positions) > 1:
        raise InputProblem(
            f"line 1: the column {column!r} is named more than once (columns "
            f"{', '.join(map(str, positions))}); keep one"
        )
    if positions:
        return positions[0] - 1
    shown = ", ".join(repr(name) for name in names)
    raise InputProblem(
        f"line 1: no column {column!r} (the columns are {shown}); choose with --column"
    )


def _address(row: list[str], position: int, column: str, line: int) -> str:
    if position >= len(row) or not row[position].strip():
        raise InputProblem(f"line {line}: no address in column {column!r}")
    value = row[position].strip()
    if parse_recipient(value) is None:
        raise InputProblem(f"line {line}: invalid email address: {value}")
    return value
