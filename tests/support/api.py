"""Calls to the API as its clients make them."""

from __future__ import annotations

from typing import Any

import httpx

# The example request of the Go service's README (aws-ses-sender-go), unchanged: its clients
# send exactly this.
SEED_EXAMPLE: dict[str, Any] = {
    "messages": [
        {
            "topicId": "promotion-event-2024",
            "emails": ["recipient1@example.com", "recipient2@example.com"],
            "subject": "Special promotion",
            "content": "<h1>Hello!</h1><p>See our special promotion.</p>",
            "scheduledAt": "2024-12-25T10:00:00+09:00",
        }
    ]
}


async def post_topic(
    api: httpx.AsyncClient, topic: str, count: int, *, scheduled_at: str | None = None
) -> list[int]:
    """POST /v1/messages: `count` recipients on `topic`; their request ids."""
    message: dict[str, object] = {
        "topicId": topic,
        "emails": [f"{topic}{i}@example.com" for i in range(count)],
        "subject": "Hello",
        "content": "<p>Hi</p>",
    }
    if scheduled_at is not None:
        message["scheduledAt"] = scheduled_at
    response = await api.post("/v1/messages", json={"messages": [message]})
    assert response.status_code == 200, response.text
    ids: list[int] = response.json()["messages"][0]["requestIds"]
    return ids
