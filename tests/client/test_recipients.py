"""Reading the recipients' CSV: bounded lines, one column of addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from ses_sender.client.recipients import MAX_LINE_CHARS, InputProblem, read_chunks


def emails_of(path: Path, column: str = "email") -> list[str]:
    return [email for chunk in read_chunks(path, column, 2) for email in chunk.emails]


def test_a_line_longer_than_the_limit_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email\na@example.com\n" + "x" * (MAX_LINE_CHARS + 1), encoding="utf-8")

    with pytest.raises(InputProblem) as refused:
        emails_of(path)

    assert str(refused.value) == ("line 3: longer than 1,048,576 characters; is this a CSV file?")


def test_a_line_at_the_limit_is_read(tmp_path: Path) -> None:
    # In notes of 100,000 characters: csv takes no field over 131,072.
    line = "a@example.com" + ("," + "x" * 100_000) * 10 + ","
    line += "x" * (MAX_LINE_CHARS - len(line) - 1)
    path = tmp_path / "list.csv"
    path.write_text(f"email\n{line}\n", encoding="utf-8")

    assert emails_of(path) == ["a@example.com"]


@pytest.mark.parametrize(
    ("header", "columns"),
    [("email,name,email", "1, 3"), ("name,Email,email", "2, 3"), ("email, EMAIL ", "1, 2")],
)
def test_the_address_column_named_twice_is_refused(
    tmp_path: Path, header: str, columns: str
) -> None:
    path = tmp_path / "list.csv"
    path.write_text(f"{header}\na@example.com,b@example.com,c@example.com\n", encoding="utf-8")

    with pytest.raises(InputProblem) as refused:
        emails_of(path)

    assert str(refused.value) == (
        f"line 1: the column 'email' is named more than once (columns {columns}); keep one"
    )


def test_other_columns_may_repeat(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("note,EMAIL,note\nx,a@example.com,y\n", encoding="utf-8")

    assert emails_of(path) == ["a@example.com"]
