"""Stored templates: created, listed a page at a time, read, edited into versions, deleted; and
messages that name one, which keep the version they were given."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ses_sender.composition import Runtime
from ses_sender.cursor import encode_cursor
from ses_sender.models import Content
from tests.support.cursors import NOT_A_CURSOR, PAST_BIGINT


def template(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "receipt",
        "subject": "Receipt {{ order }}",
        "content": "<p>Thanks {{ name }}</p>",
    }
    body.update(overrides)
    return body


async def create(client: httpx.AsyncClient, **overrides: Any) -> int:
    response = await client.post("/v1/templates", json=template(**overrides))
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 1
    template_id: int = response.json()["id"]
    return template_id


async def test_created_read_edited_and_deleted(client: httpx.AsyncClient) -> None:
    template_id = await create(client, text="Thanks {{ name }}")

    first = (await client.get(f"/v1/templates/{template_id}")).json()
    edited = await client.put(
        f"/v1/templates/{template_id}", json=template(subject="Your receipt {{ order }}")
    )
    latest = (await client.get(f"/v1/templates/{template_id}")).json()
    old = (await client.get(f"/v1/templates/{template_id}", params={"version": 1})).json()
    deleted = await client.delete(f"/v1/templates/{template_id}")
    gone = await client.get(f"/v1/templates/{template_id}")

    assert (first["name"], first["version"], first["text"]) == ("receipt", 1, "Thanks {{ name }}")
    assert edited.status_code == 200
    assert edited.json() == {"id": template_id, "version": 2}
    assert (latest["version"], latest["subject"], latest["text"]) == (
        2,
        "Your receipt {{ order }}",
        None,
    )
    assert (old["version"], old["subject"]) == (1, "Receipt {{ order }}")
    assert deleted.status_code == 204
    assert gone.status_code == 404


async def test_listed_a_page_at_a_time(client: httpx.AsyncClient) -> None:
    ids = [await create(client, name=f"t{i}") for i in range(5)]

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/templates", params=params)).json()
        seen += [entry["id"] for entry in page["templates"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert seen == ids


async def test_a_bad_template_is_refused_naming_the_field(client: httpx.AsyncClient) -> None:
    for body, field in (
        (template(subject="{{ order"), "subject: template error"),
        (template(content="{% if %}"), "content: template error"),
        (template(text="{{ a | nosuchfilter }}"), "text: template error"),
        (template(name=""), "name: "),
        (template(subject="two\nlines"), "subject: "),
    ):
        response = await client.post("/v1/templates", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"].startswith(field)
    assert (await client.get("/v1/templates")).json()["templates"] == []


async def test_unknown_templates_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/templates/424242")).status_code == 404
    assert (await client.put("/v1/templates/424242", json=template())).status_code == 404
    assert (await client.delete("/v1/templates/424242")).status_code == 404
    assert (await client.get("/v1/templates", params={"cursor": "nonsense"})).status_code == 400


@pytest.mark.parametrize("row_id", [*PAST_BIGINT, "0", "-1", "²"])
async def test_a_cursor_past_the_row_ids_is_a_400(client: httpx.AsyncClient, row_id: str) -> None:
    response = await client.get("/v1/templates", params={"cursor": encode_cursor(row_id)})

    assert response.status_code == 400
    assert response.json()["error"] == NOT_A_CURSOR


@pytest.mark.parametrize(
    ("field", "value"),
    [("templateId", 2**63), ("templateId", 0), ("templateVersion", 2**31), ("templateVersion", 0)],
)
async def test_a_template_number_past_its_column_is_a_400(
    client: httpx.AsyncClient, field: str, value: int
) -> None:
    template_id = await create(client)
    message = {"topicId": "t", "emails": ["a@example.com"], "templateId": template_id}
    for path in ("/v1/messages", "/v1/messages/preview"):
        body: dict[str, Any] = {"messages": [message | {field: value}]}
        if path.endswith("preview"):
            body = message | {field: value}
        response = await client.post(path, json=body)

        assert response.status_code == 400, response.text
        assert field in response.json()["error"]


async def test_a_queued_message_keeps_its_version_through_edits_and_deletion(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    template_id = await create(client)
    message = {
        "topicId": "receipts",
        "templateId": template_id,
        "recipients": [{"email": "jane@example.com", "data": {"name": "Jane", "order": 7}}],
    }
    queued = await client.post("/v1/messages", json={"messages": [message]})
    await client.put(f"/v1/templates/{template_id}", json=template(subject="Changed {{ order }}"))
    pinned = await client.post(
        "/v1/messages", json={"messages": [message | {"templateVersion": 1}]}
    )
    latest = await client.post("/v1/messages", json={"messages": [message]})
    await client.delete(f"/v1/templates/{template_id}")

    assert queued.status_code == pinned.status_code == latest.status_code == 200
    async with runtime.sessionmaker() as session:
        contents = (await session.scalars(select(Content).order_by(Content.id))).all()
    assert [(c.subject, c.template_id, c.template_version) for c in contents] == [
        ("Receipt {{ order }}", template_id, 1),
        ("Receipt {{ order }}", template_id, 1),
        ("Changed {{ order }}", template_id, 2),
    ]
    assert all(content.templated for content in contents)


async def test_a_message_naming_a_template_is_checked_against_it(
    client: httpx.AsyncClient,
) -> None:
    template_id = await create(client)
    lacking = {
        "topicId": "receipts",
        "templateId": template_id,
        "recipients": [{"email": "jane@example.com", "data": {"name": "Jane"}}],
    }
    unknown_version = lacking | {"templateVersion": 9}

    missing = await client.post("/v1/messages", json={"messages": [lacking]})
    no_version = await client.post("/v1/messages", json={"messages": [unknown_version]})

    assert missing.status_code == 400
    assert missing.json()["error"].startswith(
        "messages[0].subject: variable 'order' is missing from messages[0].recipients[0].data"
    )
    assert no_version.status_code == 400
    assert no_version.json()["error"].startswith("messages[0].templateVersion: ")


async def test_preview_of_a_stored_template(client: httpx.AsyncClient) -> None:
    template_id = await create(client)

    response = await client.post(
        "/v1/messages/preview",
        json={
            "topicId": "receipts",
            "templateId": template_id,
            "data": {"order": 5},
            "recipients": [{"email": "jane@example.com", "data": {"name": "Jane"}}],
        },
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "subject": "Receipt 5",
        "content": "<p>Thanks Jane</p>",
        "text": "Thanks Jane",
    }


RECURSIVE_MACRO = "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"
DEEP = "{{" + "(" * 500 + "1" + ")" * 500 + "}}"
# Blocks nested past what Python's compiler takes.
LOOPS_21_DEEP = "{% for a in [1] %}" * 21 + "{% endfor %}" * 21
IFS_99_DEEP = "{% if 1 %}" * 99 + "{% endif %}" * 99
NESTED_TOO_DEEPLY = "{}: template error (line 1): nested too deeply"


async def test_a_template_that_cannot_render_is_refused_at_create_and_update(
    client: httpx.AsyncClient,
) -> None:
    template_id = await create(client)
    for body, field in (
        (template(content=RECURSIVE_MACRO), "content: template error: calls nested too deeply"),
        (
            template(text="{% for i in range(99999) %}{% for j in range(99) %}{% endfor %}"),
            "text: template error",
        ),
        (template(content=DEEP), "content: template error"),
        (template(text="Thanks {% raw %}"), "text: template error"),
        (template(content="<p>{% raw -%}"), "content: template error"),
        (template(subject=LOOPS_21_DEEP), NESTED_TOO_DEEPLY.format("subject")),
        (template(content=IFS_99_DEEP), NESTED_TOO_DEEPLY.format("content")),
        (template(text=LOOPS_21_DEEP), NESTED_TOO_DEEPLY.format("text")),
        (
            template(content="{% set s = '<a>' * 150000 %}{{ (s | striptags) | length }}"),
            "content: template error: template work over",
        ),
    ):
        created = await client.post("/v1/templates", json=body)
        updated = await client.put(f"/v1/templates/{template_id}", json=body)
        for response in (created, updated):
            assert response.status_code == 400, body
            assert response.json()["error"].startswith(field), response.text
    listed = (await client.get("/v1/templates")).json()["templates"]
    assert [(entry["id"], entry["version"]) for entry in listed] == [(template_id, 1)]


async def test_a_template_that_loops_over_data_is_stored(client: httpx.AsyncClient) -> None:
    await create(
        client,
        content="{% for p in products %}{% for t in p.tags %}{{ t }}{% endfor %}{% endfor %}"
        "{% macro tree(node) %}{% for c in node.children %}{{ tree(c) }}{% endfor %}"
        "{% endmacro %}{{ tree(root) }}",
    )
