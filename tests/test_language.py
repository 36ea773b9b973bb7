"""Choosing a page's language from Accept-Language."""

from __future__ import annotations

import pytest

from ses_sender.web.language import preferred_language

SUPPORTED = ("en", "ko")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("ko", "ko"),
        ("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", "ko"),
        ("en-US,en;q=0.9,ko;q=0.8", "en"),
        ("fr-FR,fr;q=0.9,ko;q=0.5", "ko"),
        ("en;q=0.4, ko;q=0.6", "ko"),
        ("KO-kr", "ko"),
        ("ko;q=0, en;q=0.1", "en"),
        ("ko;q=abc, en;q=0.1", "en"),
        ("ko;q=7", "en"),
        ("de, fr", "en"),
        ("*", "en"),
    ],
)
def test_the_best_weighted_language_of_ours_wins(header: str | None, expected: str) -> None:
    assert preferred_language(header, SUPPORTED) == expected


def test_a_header_of_any_length_is_read_in_bounded_time() -> None:
    header = ",".join(["fr"] * 100_000) + ",ko"

    assert preferred_language(header, SUPPORTED) == "en"
