"""What `ses-sender send` puts in each chunk it posts."""

from __future__ import annotations

import json
from pathlib import Path

from ses_sender.client.recipients import Chunk
from ses_sender.client.sending import Campaign, _body, idempotency_key

CHUNK = Chunk(index=0, emails=["a@example.com"], first_line=2, bytes_read=20)


def campaign(text: str | None) -> Campaign:
    return Campaign(
        topic_id="spring",
        subject="Sale",
        html="<p>Sale</p>",
        text=text,
        scheduled_at=None,
        recipients=Path("list.csv"),
        column="email",
        chunk_size=100,
    )


def test_the_text_part_goes_with_the_message_when_given() -> None:
    [with_text] = json.loads(_body(campaign("Sale"), CHUNK))["messages"]
    [without] = json.loads(_body(campaign(None), CHUNK))["messages"]

    assert with_text["text"] == "Sale"
    assert "text" not in without


def test_a_different_text_part_is_a_different_chunk() -> None:
    keys = {idempotency_key(campaign(text), CHUNK) for text in (None, "", "Sale", "Sale!")}

    assert len(keys) == 4
