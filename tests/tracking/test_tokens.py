from __future__ import annotations

import base64
import os

import pytest

from ses_sender.tracking.tokens import ClickToken, TrackingTokens


def test_a_token_names_its_request_and_nothing_else_can() -> None:
    tokens = TrackingTokens("s" * 32)

    token = tokens.for_open(123_456)

    assert tokens.open_request_id(token) == 123_456
    assert "123456" not in token
    assert tokens.for_open(123_456) != token  # a fresh nonce each time


@pytest.mark.parametrize("forged", ["", "123", "1.abc", "!!!", "A" * 48, "A" * 47, "AAAA" * 100])
def test_anything_but_a_token_of_ours_is_refused(forged: str) -> None:
    assert TrackingTokens("s" * 32).open_request_id(forged) is None


def test_a_changed_character_is_refused() -> None:
    tokens = TrackingTokens("s" * 32)
    token = tokens.for_open(7)

    for position in range(len(token)):
        replacement = "A" if token[position] != "A" else "B"
        tampered = token[:position] + replacement + token[position + 1 :]
        assert tokens.open_request_id(tampered) is None


def test_another_secret_does_not_accept_it() -> None:
    token = TrackingTokens("s" * 32).for_open(7)

    assert TrackingTokens("t" * 32).open_request_id(token) is None


def test_an_unsubscribe_token_names_its_request() -> None:
    tokens = TrackingTokens("s" * 32)

    assert tokens.unsubscribe_request_id(tokens.for_unsubscribe(99)) == 99


def test_a_token_serves_only_its_own_purpose() -> None:
    tokens = TrackingTokens("s" * 32)

    assert tokens.unsubscribe_request_id(tokens.for_open(7)) is None
    assert tokens.open_request_id(tokens.for_unsubscribe(7)) is None


def test_a_click_token_names_its_link_and_is_short() -> None:
    tokens = TrackingTokens("s" * 32)
    click = ClickToken(request_id=2**40, content_id=77, position=3, fingerprint=0xDEADBEEF)

    token = tokens.for_click(click)

    assert tokens.click(token) == click
    assert len(token) == 62


def test_a_click_token_is_good_for_clicks_only() -> None:
    tokens = TrackingTokens("s" * 32)
    click = tokens.for_click(ClickToken(1, 1, 0, 0))

    assert tokens.open_request_id(click) is None
    assert tokens.unsubscribe_request_id(click) is None
    assert tokens.click(tokens.for_open(1)) is None
    assert TrackingTokens("t" * 32).click(click) is None  # another deployment's secret


def test_a_changed_character_of_a_click_token_is_refused() -> None:
    tokens = TrackingTokens("s" * 32)
    token = tokens.for_click(ClickToken(5, 6, 7, 8))

    for position in range(len(token)):
        replacement = "A" if token[position] != "A" else "B"
        assert tokens.click(token[:position] + replacement + token[position + 1 :]) is None


def test_an_emails_click_tokens_name_each_link_and_none_repeats() -> None:
    tokens = TrackingTokens("s" * 32)
    links = [(position, position * 1000) for position in range(600)]  # past one batch of nonces

    made = tokens.for_clicks(9, 4, links) + tokens.for_clicks(9, 4, links)

    assert [tokens.click(token) for token in made] == 2 * [
        ClickToken(9, 4, position, fingerprint) for position, fingerprint in links
    ]
    assert len({nonce(token) for token in made}) == len(made)


def test_a_forked_process_never_uses_a_nonce_of_its_parent() -> None:
    tokens = TrackingTokens("s" * 32)
    tokens.for_open(1)  # the parent holds nonces it has not used yet
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child exits without reporting to coverage)
        os.write(write, tokens.for_open(1).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as from_child:
        childs = from_child.read()

    assert tokens.open_request_id(childs) == 1
    assert nonce(childs) != nonce(tokens.for_open(1))


def nonce(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))[:12]
