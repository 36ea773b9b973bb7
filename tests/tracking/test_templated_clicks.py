"""Clicks on the links of templated messages and of text parts, against a real database: each
recipient's link leads to the URL rendered for them and counts for them; a token of one
recipient never leads to another's URL; forged tokens answer 404 and record nothing."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from ses_sender.composition import Runtime
from ses_sender.models import EventType, Request, RequestStatus
from ses_sender.stats import service as stats
from ses_sender.tracking.links import fingerprint
from ses_sender.transports.base import OutgoingEmail
from tests.support.clock import FakeClock
from tests.support.rows import request_row, stored_results
from tests.support.tracking import (
    DESKTOP_BROWSER,
    click_path,
    composed,
    tampered,
    tracked_links,
)

TOPIC = "orders"
HTML = (
    "<html><body><p>Hello {{ name }},</p><table>{% for line in lines %}<tr><td>{{ line }}</td>"
    '<td><a href="https://shop.example/help">help</a></td></tr>{% endfor %}</table>'
    '<p><a class="button"'
    ' href="https://shop.example/orders/{{ order }}?from=mail&amp;l={{ lang }}">your order</a>'
    " <a href='https://shop.example/sale'>sale</a>"
    ' <a href="{{ unsubscribe_url }}">unsubscribe</a> <a href="mailto:help@example.com">write</a>'
    ' <a href="https://shop.example/private" data-ses-sender-notrack>private</a></p>'
    "</body></html>"
)
TEXT = "Hello {{ name }}: https://shop.example/orders/{{ order }}/text. Sale: https://shop.example/sale"
RECIPIENTS = [
    {"email": "jane@example.com", "data": {"name": "Jane", "order": 1234, "lang": "en"}},
    {"email": "joe@example.com", "data": {"name": "Jöe", "order": "ß 99", "lang": "de"}},
]
JANE_ORDER = "https://shop.example/orders/1234?from=mail&l=en"
JOE_ORDER = "https://shop.example/orders/ß 99?from=mail&l=de"
JOE_ORDER_LOCATION = "https://shop.example/orders/%C3%9F%2099?from=mail&l=de"
SALE = "https://shop.example/sale"
HELP = "https://shop.example/help"
PERSON = {"user-agent": DESKTOP_BROWSER, "x-forwarded-for": "203.0.113.7"}
BETWEEN_CLICKS = timedelta(seconds=60)


async def personal_emails(
    client: httpx.AsyncClient, runtime: Runtime, **message: object
) -> list[tuple[int, OutgoingEmail]]:
    """Jane's and Joe's emails, queued through the API and marked sent a while ago."""
    body = {
        "topicId": TOPIC,
        "recipients": RECIPIENTS,
        "data": {"lines": ["a", "b"]},
        "subject": "Your order {{ order }}",
        "content": HTML,
        **message,
    }
    response = await client.post("/v1/messages", json={"messages": [body]})
    assert response.status_code == 200, response.text
    ids: list[int] = response.json()["messages"][0]["requestIds"]
    async with runtime.sessionmaker() as session, session.begin(), stats.counting(session, ids):
        await session.execute(
            update(Request).values(status=RequestStatus.SENT, sent_at=runtime.clock.now())
        )
    assert isinstance(runtime.clock, FakeClock)
    runtime.clock.advance(600)
    return [(request_id, await composed(runtime, request_id)) for request_id in ids]


async def clicks(runtime: Runtime) -> list[tuple[int | None, str | None]]:
    return [
        (row.request_id, row.url)
        for row in await stored_results(runtime)
        if row.status == EventType.CLICK
    ]


def token_of(link: str) -> str:
    return click_path(link).removeprefix("/v1/c/")


async def test_each_recipient_is_led_to_their_own_link_and_it_counts_for_them(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    (jane_id, jane), (joe_id, joe) = await personal_emails(client, runtime)
    # Two help links (one per line of the loop), the order, the sale; the honeypot last.
    jane_help, jane_help_again, jane_order, jane_sale, _ = tracked_links(jane.html)
    _, _, joe_order, joe_sale, _ = tracked_links(joe.html)
    assert jane_help == jane_help_again  # one link of the template, written twice

    answers = []
    for link in (jane_order, joe_order, joe_sale, jane_help):
        answers.append(await client.get(click_path(link), headers=PERSON))
        clock.advance(BETWEEN_CLICKS.total_seconds())
    await runtime.hits.settle()

    assert [(answer.status_code, answer.headers["location"]) for answer in answers] == [
        (302, JANE_ORDER),
        (302, JOE_ORDER_LOCATION),
        (302, SALE),
        (302, HELP),
    ]
    assert await clicks(runtime) == [
        (jane_id, JANE_ORDER),
        (joe_id, JOE_ORDER),
        (joe_id, SALE),
        (jane_id, HELP),
    ]
    jane_row, joe_row = await request_row(runtime, jane_id), await request_row(runtime, joe_id)
    assert (jane_row.click_count, joe_row.click_count) == (2, 2)
    assert jane_row.first_clicked_at == clock.now() - 4 * BETWEEN_CLICKS
    assert joe_row.first_clicked_at == clock.now() - 3 * BETWEEN_CLICKS
    links = (await client.get(f"/v1/topics/{TOPIC}/links")).json()["links"]
    assert sorted((link["url"], link["total"], link["human"]) for link in links) == sorted(
        [(JANE_ORDER, 1, 1), (JOE_ORDER, 1, 1), (SALE, 1, 1), (HELP, 1, 1)]
    )
    assert (await client.get(f"/v1/topics/{TOPIC}")).json()["clicks"]["total"] == 4
    assert jane_sale != joe_sale


async def test_what_is_not_tracked_stays_as_the_template_renders_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    [(_, jane), _] = await personal_emails(client, runtime)

    assert 'href="mailto:help@example.com"' in jane.html
    assert 'href="https://shop.example/private"' in jane.html
    assert "data-ses-sender-notrack" not in jane.html
    unsubscribe = re.search(r'href="([^"]+/v1/unsubscribe/[^"]+)"', jane.html)
    assert unsubscribe is not None
    assert unsubscribe.group(1) == dict(jane.headers)["List-Unsubscribe"].strip("<>")
    assert '<a class="button" href="' in jane.html
    assert "<td>a</td>" in jane.html
    assert "<td>b</td>" in jane.html
    assert "Hello Jane," in jane.html
    assert jane.subject == "Your order 1234"


async def test_a_recipients_token_never_leads_to_another_recipients_link(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    (jane_id, jane), (joe_id, joe) = await personal_emails(client, runtime)
    jane_click = runtime.tokens.click(token_of(tracked_links(jane.html)[2]))
    assert jane_click is not None
    joes_fingerprint = fingerprint(JOE_ORDER)
    forged = [
        # Jane's link, claimed for Joe: Joe's link renders to another URL.
        dataclasses.replace(jane_click, request_id=joe_id),
        # Jane's email, with the fingerprint of Joe's URL: Jane's link renders to her own.
        dataclasses.replace(jane_click, fingerprint=joes_fingerprint),
        # A request of another content.
        dataclasses.replace(jane_click, request_id=joe_id + 1000),
    ]

    for click in forged:
        response = await client.get(f"/v1/c/{runtime.tokens.for_click(click)}", headers=PERSON)
        assert response.status_code == 404
    mine = await client.get(click_path(tracked_links(jane.html)[2]), headers=PERSON)
    theirs = await client.get(click_path(tracked_links(joe.html)[2]), headers=PERSON)
    await runtime.hits.settle()

    assert mine.headers["location"] == JANE_ORDER
    assert theirs.headers["location"] != JANE_ORDER
    assert await clicks(runtime) == [(jane_id, JANE_ORDER), (joe_id, JOE_ORDER)]


async def test_a_recipients_data_is_read_once_then_from_memory(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    (jane_id, jane), _ = await personal_emails(client, runtime)
    order = click_path(tracked_links(jane.html)[2])
    assert (await client.get(order, headers=PERSON)).headers["location"] == JANE_ORDER
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Request).where(Request.id == jane_id).values(data='{"order": 1, "lang": "x"}')
        )

    again = await client.get(order, headers=PERSON)

    assert again.headers["location"] == JANE_ORDER  # the stored data was not read again


@asynccontextmanager
async def writing_unfinished(runtime: Runtime, request_id: int) -> AsyncIterator[None]:
    """Another transaction has changed the request's data and not committed (it rolls back at
    the end): on SQLite it holds the database's write lock, as the click recorder and the worker
    do for each of their transactions; on PostgreSQL, the request's row."""
    async with runtime.engine.connect() as writer:
        await writer.execute(
            update(Request).where(Request.id == request_id).values(data='{"order": 1, "lang": "x"}')
        )
        yield


@pytest.mark.parametrize(
    "email_read_before", [False, True], ids=["first-click-of-the-email", "email-read-before"]
)
async def test_a_recipients_first_click_answers_while_another_transaction_writes(
    client: httpx.AsyncClient, runtime: Runtime, email_read_before: bool
) -> None:
    """The redirect's reads (the content on its first click, the recipient's data on theirs)
    read the last commit beside a writer instead of waiting for it (on SQLite, until its busy
    timeout, and then failing)."""
    (_, jane), (joe_id, joe) = await personal_emails(client, runtime)
    if email_read_before:
        earlier = await client.get(click_path(tracked_links(jane.html)[2]), headers=PERSON)
        assert earlier.status_code == 302
    await runtime.hits.settle()

    async with writing_unfinished(runtime, joe_id):
        answer = await client.get(click_path(tracked_links(joe.html)[2]), headers=PERSON)
    await runtime.hits.settle()

    assert (answer.status_code, answer.headers.get("location")) == (302, JOE_ORDER_LOCATION)
    assert (joe_id, JOE_ORDER) in await clicks(runtime)


async def test_tampered_tokens_of_rendered_links_get_a_404_and_record_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    (jane_id, jane), _ = await personal_emails(client, runtime)
    token = token_of(tracked_links(jane.html)[2])

    answers = [
        (await client.get(f"/v1/c/{bad}", headers=PERSON)).status_code
        for bad in tampered(token, every=3)
    ]
    await runtime.hits.settle()

    assert set(answers) == {404}
    assert await clicks(runtime) == []
    assert (await request_row(runtime, jane_id)).click_count == 0


async def test_links_of_a_given_text_part_are_tracked_for_each_recipient(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    (jane_id, jane), (joe_id, joe) = await personal_emails(client, runtime, text=TEXT)
    jane_links = re.findall(r"https://mail\.example\.com/v1/c/\S+?(?=[.\s]|$)", jane.text)
    joe_links = re.findall(r"https://mail\.example\.com/v1/c/\S+?(?=[.\s]|$)", joe.text)
    assert len(jane_links) == len(joe_links) == 2
    assert jane.text.startswith("Hello Jane: https://mail.example.com/v1/c/")

    answers = [
        (await client.get(click_path(link), headers=PERSON)).headers["location"]
        for link in (*jane_links, joe_links[0])
    ]
    await runtime.hits.settle()

    assert answers == [
        "https://shop.example/orders/1234/text",
        SALE,
        "https://shop.example/orders/%C3%9F%2099/text",
    ]
    assert await clicks(runtime) == [
        (jane_id, "https://shop.example/orders/1234/text"),
        (jane_id, SALE),
        (joe_id, "https://shop.example/orders/ß 99/text"),
    ]


async def test_a_templated_message_can_opt_out_and_so_can_the_setting(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    [(_, untracked), _] = await personal_emails(client, runtime, trackClicks=False, text=TEXT)
    assert tracked_links(untracked.html) == []
    assert 'href="https://shop.example/orders/1234?from=mail&amp;l=en"' in untracked.html
    assert untracked.text == "Hello Jane: https://shop.example/orders/1234/text. Sale: " + SALE

    off = dataclasses.replace(
        runtime, settings=runtime.settings.model_copy(update={"track_clicks": False})
    )
    [(jane_id, _), _] = await personal_emails(client, runtime)
    assert tracked_links((await composed(off, jane_id)).html) == []


async def test_a_text_part_given_with_a_plain_message_is_tracked_and_kept_as_written(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    message = {
        "topicId": TOPIC,
        "emails": ["ann@example.com"],
        "subject": "Sale",
        "content": '<p><a href="https://shop.example/sale">sale</a></p>',
        "text": "{{ not a template }} See https://shop.example/sale, or mailto:help@example.com",
    }
    response = await client.post("/v1/messages", json={"messages": [message]})
    [request_id] = response.json()["messages"][0]["requestIds"]

    email = await composed(runtime, request_id)
    [html_link, _honeypot] = tracked_links(email.html)
    [text_link] = re.findall(r"https://mail\.example\.com/v1/c/[\w-]+", email.text)

    assert email.text == (f"{{{{ not a template }}}} See {text_link}, or mailto:help@example.com")
    assert text_link != html_link
    answer = await client.get(click_path(text_link), headers=PERSON)
    assert answer.headers["location"] == SALE


async def test_the_preview_shows_the_links_as_written(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/messages/preview",
        json={
            "topicId": TOPIC,
            "recipients": RECIPIENTS[:1],
            "data": {"lines": []},
            "subject": "Order {{ order }}",
            "content": HTML,
        },
    )

    assert response.status_code == 200
    preview = response.json()
    assert 'href="https://shop.example/orders/1234?from=mail&amp;l=en"' in preview["content"]
    assert "/v1/c/" not in preview["content"]
    assert "[your order](https://shop.example/orders/1234?from=mail&l=en)" in preview["text"]
