"""POST /v1/messages with the fields beyond the seed's: per-recipient data and templates,
`from`, `replyTo`, headers, tags and attachments, all checked before anything is stored; and
POST /v1/messages/preview."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from ses_sender.composition import Runtime, create_app
from ses_sender.errors import InvalidInput
from ses_sender.messages.dependencies import SENDER_POLICY
from ses_sender.messages.envelope import SenderPolicy, check_sender
from ses_sender.messages.schemas import MAX_ATTACHMENT_BYTES
from ses_sender.models import Attachment, Content, Request
from tests.support.settings import API_KEY


def personal(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "topicId": "orders",
        "recipients": [
            {"email": "jane@example.com", "data": {"name": "Jane", "order": 1234}},
            {"email": "joe@example.com", "data": {"name": "Joe", "order": 99}},
        ],
        "subject": "Order {{ order }}",
        "content": "<p>Hello {{ name }}</p>",
    }
    body.update(overrides)
    return body


async def post(client: httpx.AsyncClient, *messages: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/messages", json={"messages": list(messages)})


async def stored(runtime: Runtime) -> tuple[int, int, int]:
    async with runtime.sessionmaker() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Content, Request, Attachment)
        ]
    return counts[0], counts[1], counts[2]


async def test_recipients_with_data_are_stored_templated(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await post(
        client, personal(emails=["plain@example.com"], data={"name": "friend", "order": 0})
    )

    assert response.status_code == 200, response.text
    [accepted] = response.json()["messages"]
    assert len(accepted["requestIds"]) == 3  # emails first, then recipients
    async with runtime.sessionmaker() as session:
        content = (await session.scalars(select(Content))).one()
        rows = {row.id: row for row in await session.scalars(select(Request))}
    assert content.templated
    assert orjson.loads(content.data or "") == {"name": "friend", "order": 0}
    plain, jane, joe = (rows[i] for i in accepted["requestIds"])
    assert plain.data is None
    assert orjson.loads(jane.data or "") == {"name": "Jane", "order": 1234}
    assert orjson.loads(joe.data or "") == {"name": "Joe", "order": 99}


async def test_seed_fields_alone_are_not_templated(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await post(
        client,
        {"topicId": "t", "emails": ["a@example.com"], "subject": "{{ x }}", "content": "{{ y }}"},
    )

    assert response.status_code == 200
    async with runtime.sessionmaker() as session:
        content = (await session.scalars(select(Content))).one()
    assert not content.templated
    assert (content.subject, content.content) == ("{{ x }}", "{{ y }}")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            personal(content="<p>{{ name }} {{ missing }}</p>"),
            "messages[1].content: variable 'missing' is missing from "
            "messages[1].recipients[0].data",
        ),
        (
            personal(recipients=[{"email": "a@example.com", "data": {"name": "A"}}]),
            "messages[1].subject: variable 'order' is missing from messages[1].recipients[0].data",
        ),
        (
            personal(emails=["plain@example.com"]),
            "messages[1].content: variable 'name' is missing from messages[1].emails[0]",
        ),
        (personal(subject="Order {{ order"), "messages[1].subject: template error (line 1)"),
        (personal(content="{% for %}"), "messages[1].content: template error (line 1)"),
        (personal(text="{{ name | nosuchfilter }}"), "messages[1].text: template error"),
        (
            personal(recipients=[{"email": "not-an-address", "data": {}}]),
            "messages[1].recipients[0].email: invalid email address",
        ),
        (personal(**{"from": "someone@elsewhere.example"}), "messages[1].from: someone@"),
        (personal(replyTo=["ok@example.com", "bad"]), "messages[1].replyTo[1]: invalid"),
        (personal(headers={"Reply-To": "x@example.com"}), "messages[1].headers.Reply-To: "),
        (personal(headers={"Content-Type": "text/plain"}), "messages[1].headers.Content-Type"),
        (personal(headers={"X-Campaign": "a\r\nBcc: x"}), "messages[1].headers.X-Campaign"),
        (personal(headers={"Bad Name": "x"}), "messages[1].headers.Bad Name"),
        (personal(tags={"campaign": "spring sale"}), "messages[1].tags.campaign"),
        (personal(tags={"ses-sender-topic": "x"}), "messages[1].tags.ses-sender-topic"),
        (
            personal(
                attachments=[{"filename": "a.txt", "contentType": "text/plain", "content": "%%"}]
            ),
            "messages[1].attachments[0].content: not valid base64",
        ),
        (
            personal(attachments=[{"filename": "a", "contentType": "plain", "content": ""}]),
            "messages[1].attachments[0].contentType",
        ),
        (
            personal(templateId=999_999, subject="", content=""),
            "messages[1].templateId: template 999999 not found",
        ),
        (personal(templateId=1), "messages[1].subject: give templateId or subject, not both"),
        (
            personal(templateVersion=2),
            "messages[1].templateVersion: only with templateId",
        ),
    ],
)
async def test_a_bad_message_is_refused_whole_naming_the_field(
    client: httpx.AsyncClient, runtime: Runtime, message: dict[str, Any], expected: str
) -> None:
    response = await post(client, personal(), message)

    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(expected)
    assert await stored(runtime) == (0, 0, 0)


async def test_attachments_over_the_limit_are_refused(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    half = base64.b64encode(b"x" * (MAX_ATTACHMENT_BYTES // 2 + 1)).decode()
    files = [
        {"filename": f"{i}.bin", "contentType": "application/octet-stream", "content": half}
        for i in range(2)
    ]

    response = await post(client, personal(attachments=files))

    assert response.status_code == 400
    assert response.json()["error"].startswith("messages[0].attachments[1].content: ")
    assert str(MAX_ATTACHMENT_BYTES) in response.json()["error"]
    assert await stored(runtime) == (0, 0, 0)


async def test_attachments_are_stored_once_per_message(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    data = base64.b64encode(b"%PDF-1.4 invoice").decode()
    recipients = [{"email": f"r{i}@example.com", "data": {}} for i in range(5)]
    response = await post(
        client,
        personal(
            recipients=recipients,
            subject="Invoice",
            content="<p>Attached</p>",
            attachments=[
                {"filename": "invoice.pdf", "contentType": "application/pdf", "content": data}
            ],
        ),
    )

    assert response.status_code == 200, response.text
    assert await stored(runtime) == (1, 5, 1)


async def test_from_reply_to_headers_and_tags_are_stored(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    app = create_app(runtime)
    SENDER_POLICY.provide(app, SenderPolicy.of("news@example.com", ["example.org"]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"x-api-key": API_KEY},
    ) as allowed:
        response = await post(
            allowed,
            personal(
                **{"from": "Shop <Sales@Example.ORG>"},
                replyTo="help@example.com",
                headers={"X-Campaign": "spring"},
                tags={"campaign": "spring-2026"},
            ),
        )

    assert response.status_code == 200, response.text
    async with runtime.sessionmaker() as session:
        content = (await session.scalars(select(Content))).one()
    assert content.sender == "Shop <Sales@example.org>"
    assert orjson.loads(content.reply_to or "") == ["help@example.com"]
    assert orjson.loads(content.headers or "") == [["X-Campaign", "spring"]]
    assert orjson.loads(content.tags or "") == [["campaign", "spring-2026"]]


def test_from_is_the_default_sender_or_an_allowed_address_or_domain() -> None:
    policy = SenderPolicy.of("News <news@example.com>", ["billing@example.net", "@example.org"])

    assert check_sender("news@EXAMPLE.com", policy, "from") == "news@example.com"
    assert check_sender("Billing <billing@example.net>", policy, "from") == (
        "Billing <billing@example.net>"
    )
    assert check_sender("anyone@example.org", policy, "from") == "anyone@example.org"
    assert check_sender(None, policy, "from") is None
    for refused in ("other@example.net", "news@example.com.evil.test", "a@b.example.org"):
        with pytest.raises(InvalidInput, match="not an allowed sender"):
            check_sender(refused, policy, "from")


async def test_preview_renders_for_the_one_recipient_and_queues_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post(
        "/v1/messages/preview",
        json=personal(
            recipients=[{"email": "jane@example.com", "data": {"name": "<Jane>", "order": 7}}],
            content="<p>Hello {{ name }}</p><a href='{{ unsubscribe_url }}'>leave</a>",
            text="Hi {{ name }}, order {{ order }} for {{ email }}",
        ),
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "subject": "Order 7",
        "content": "<p>Hello &lt;Jane&gt;</p>"
        "<a href='https://mail.example.com/v1/unsubscribe/preview'>leave</a>",
        "text": "Hi <Jane>, order 7 for jane@example.com",
    }
    assert await stored(runtime) == (0, 0, 0)


async def test_preview_wants_exactly_one_recipient(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/messages/preview", json=personal())

    assert response.status_code == 400
    assert response.json()["error"].startswith("message.recipients: ")


async def test_rendering_is_bounded_and_sandboxed(client: httpx.AsyncClient) -> None:
    one = [{"email": "a@example.com", "data": {"name": "A", "order": 1}}]
    huge = await client.post(
        "/v1/messages/preview",
        json=personal(
            recipients=one, content="{% for i in range(20000) %}" + "x" * 600 + "{% endfor %}"
        ),
    )
    escape = await client.post(
        "/v1/messages/preview",
        json=personal(recipients=one, content="{{ ''.__class__.__mro__ }}"),
    )

    assert huge.status_code == 400
    assert "rendered output over" in huge.json()["error"]
    assert escape.status_code == 400
    assert "unsafe" in escape.json()["error"]


DEEP = "{{" + "(" * 490 + "1" + ")" * 490 + "}}"  # a subject's 998 characters at most
RECURSIVE_MACRO = "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"
NESTED_LOOPS = (
    "{% for i in range(99999) %}{% for j in range(2000) %}{% if j == -1 %}x{% endif %}"
    "{% endfor %}{% endfor %}"
)
ONE = [{"email": "a@example.com", "data": {"name": "A", "order": 1}}]
# Blocks nested past what Python's compiler takes.
LOOPS_21_DEEP = "{% for a in [1] %}" * 21 + "{% endfor %}" * 21
IFS_99_DEEP = "{% if 1 %}" * 99 + "{% endif %}" * 99
MACROS_99_DEEP = "{% macro m() %}" * 99 + "{% endmacro %}" * 99
HEAVY_FILTER = "{% set s = '<a>' * 150000 %}{{ (s | sort) | length }}"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"from": "a<"}, "from: expected one address"),
        ({"from": "x:y <"}, "from: expected one address"),
        ({"data": {"n": 2**64}}, "data: integers must lie between"),
        ({"data": {"deep": {"list": [1, -(2**63) - 1]}}}, "data: integers must lie between"),
        (
            {"recipients": [{"email": "a@example.com", "data": {"name": "A", "order": 10**4000}}]},
            "recipients[0].data: integers must lie between",
        ),
        ({"content": "{% for i in range(100000000) %}x{% endfor %}"}, "content: template error"),
        ({"content": RECURSIVE_MACRO}, "content: template error: calls nested too deeply"),
        ({"content": NESTED_LOOPS}, "content: template error: template work over"),
        ({"subject": DEEP}, "subject: template error"),
        ({"content": DEEP}, "content: template error"),
        ({"content": "<p>{% raw %}"}, "content: template error"),
        ({"text": "Hello {% raw %}"}, "text: template error"),
        ({"subject": LOOPS_21_DEEP}, "subject: template error (line 1): nested too deeply"),
        ({"content": IFS_99_DEEP}, "content: template error (line 1): nested too deeply"),
        ({"text": MACROS_99_DEEP}, "text: template error (line 1): nested too deeply"),
        ({"content": HEAVY_FILTER}, "content: template error: template work over"),
        ({"text": HEAVY_FILTER}, "text: template error: template work over"),
    ],
    ids=[
        "from a<",
        "from x:y <",
        "integer over 64 bits",
        "integer under 64 bits, deep",
        "4,000-digit integer",
        "too big a range",
        "recursive macro",
        "nested loops",
        "subject nested 500 deep",
        "content nested 500 deep",
        "unclosed raw in content",
        "unclosed raw in text",
        "subject of 21 nested loops",
        "content of 99 nested ifs",
        "text of 99 nested macros",
        "a heavy filter in content",
        "a heavy filter in text",
    ],
)
async def test_what_cannot_be_sent_is_refused_naming_the_field(
    client: httpx.AsyncClient, runtime: Runtime, fields: dict[str, Any], error: str
) -> None:
    message = personal(**{"recipients": ONE, **fields})

    queued = await post(client, personal(), message)
    previewed = await client.post("/v1/messages/preview", json=message)

    assert queued.status_code == 400, queued.text
    assert queued.json()["error"].startswith(f"messages[1].{error}")
    assert previewed.status_code == 400, previewed.text
    assert previewed.json()["error"].startswith(f"message.{error}")
    assert await stored(runtime) == (0, 0, 0)


async def test_a_template_that_fails_for_the_first_recipient_is_refused_naming_them(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await post(
        client,
        personal(
            recipients=[
                {"email": "one@example.com", "data": {"name": "One", "order": 0}},
                {"email": "two@example.com", "data": {"name": "Two", "order": 2}},
            ],
            emails=[],
            content="<p>{{ 100 // order }}</p>",
        ),
    )

    assert response.status_code == 400
    assert response.json()["error"] == (
        "messages[0].content: template error: integer division or modulo by zero, "
        "rendered for messages[0].recipients[0].email"
    )
    assert await stored(runtime) == (0, 0, 0)
