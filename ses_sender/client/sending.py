"""`ses-sender send`: a CSV of recipients to one topic, in chunks, resumable.

Each chunk goes with an Idempotency-Key made from everything that makes it what it is (the
topic, the subject, the HTML and the text part, the time, the chunk's place in the file and its
addresses). Run
again after an interruption, the command sends every chunk again with the same keys: the
service answers those it has already stored from its first answer and stores nothing twice, and
stores the rest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from ses_sender.client.recipients import Chunk, file_size, read_chunks
from ses_sender.client.service_api import ServiceApi

KEY_PREFIX = "ses-sender-send-"


@dataclass(frozen=True)
class Campaign:
    topic_id: str
    subject: str
    html: str
    scheduled_at: str | None
    recipients: Path
    column: str
    chunk_size: int
    text: str | None = None  # the plain-text part; None: the service derives it from the HTML


@dataclass
class SendReport:
    chunks: int = 0  # answered by the service, in this run
    emails: int = 0  # in those chunks (an earlier run may have queued some of them)


def check(campaign: Campaign, console: Console) -> int:
    """Read the whole file once, so a bad line stops the run before anything is sent; the
    number of addresses."""
    count = 0
    with _bytes_progress(console, "checking") as progress:
        task = progress.add_task("checking", total=file_size(campaign.recipients))
        for chunk in read_chunks(campaign.recipients, campaign.column, campaign.chunk_size):
            count += len(chunk.emails)
            progress.update(task, completed=chunk.bytes_read)
    return count


def send(
    campaign: Campaign,
    api: ServiceApi,
    console: Console,
    *,
    total: int,
    report: SendReport,
) -> None:
    """Chunk after chunk, counting into `report` (read it after an interruption too)."""
    with Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("sending", total=total)
        for chunk in read_chunks(campaign.recipients, campaign.column, campaign.chunk_size):
            api.queue(_body(campaign, chunk), idempotency_key(campaign, chunk))
            report.chunks += 1
            report.emails += len(chunk.emails)
            progress.advance(task, len(chunk.emails))


def idempotency_key(campaign: Campaign, chunk: Chunk) -> str:
    digest = hashlib.sha256()
    for part in (
        campaign.topic_id,
        campaign.subject,
        hashlib.sha256(campaign.html.encode()).hexdigest(),
        # Absent and empty differ: no text part given, or an empty one.
        ""
        if campaign.text is None
        else "text:" + hashlib.sha256(campaign.text.encode()).hexdigest(),
        campaign.scheduled_at or "",
        str(chunk.index),
        "\n".join(chunk.emails),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return KEY_PREFIX + digest.hexdigest()


def _body(campaign: Campaign, chunk: Chunk) -> bytes:
    message: dict[str, object] = {
        "topicId": campaign.topic_id,
        "emails": chunk.emails,
        "subject": campaign.subject,
        "content": campaign.html,
    }
    if campaign.text is not None:
        message["text"] = campaign.text
    if campaign.scheduled_at is not None:
        message["scheduledAt"] = campaign.scheduled_at
    return json.dumps({"messages": [message]}, ensure_ascii=False).encode()


def _bytes_progress(console: Console, label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TaskProgressColumn(),
        console=console,
    )
