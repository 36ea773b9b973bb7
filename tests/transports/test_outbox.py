from __future__ import annotations

import asyncio
from email import message_from_bytes, policy
from pathlib import Path

from ses_sender.transports.outbox import OutboxTransport
from tests.support.emails import RECIPIENT, make_email


async def test_writes_a_parsable_eml_per_email(tmp_path: Path) -> None:
    directory = tmp_path / "not" / "yet" / "there"
    transport = OutboxTransport(directory)

    message_id = await transport.send(make_email())

    [path] = directory.iterdir()
    assert path.name == f"{message_id}.eml"
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["Message-ID"] == f"<{message_id}>"
    assert message["To"] == RECIPIENT
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # What SES would have read and stripped is not there: the tags hold our request id.
    assert "X-SES-MESSAGE-TAGS" not in message
    assert "X-SES-CONFIGURATION-SET" not in message
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]


async def test_on_sent_is_called_once_the_file_is_written(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    directory.mkdir()
    files_when_called: list[int] = []

    message_id = await OutboxTransport(directory).send(
        make_email(), on_sent=lambda: files_when_called.append(len(list(directory.iterdir())))
    )

    [written] = directory.iterdir()
    assert files_when_called == [1]
    assert written.name == f"{message_id}.eml"


async def test_concurrent_sends_make_distinct_files(tmp_path: Path) -> None:
    transport = OutboxTransport(tmp_path)

    ids = await asyncio.gather(*(transport.send(make_email()) for _ in range(20)))

    assert len(set(ids)) == 20
    names = await asyncio.to_thread(lambda: sorted(path.name for path in tmp_path.iterdir()))
    assert names == sorted(f"{message_id}.eml" for message_id in ids)
