"""Opens and clicks as clients make them: recorded request shapes, the judge the app uses, and
the HTTP calls of a recipient's mail client."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from selectolax.lexbor import LexborHTMLParser

from ses_sender.composer.service import EmailComposer
from ses_sender.composition import Runtime
from ses_sender.delivery import repository as delivery
from ses_sender.delivery.emails import QueuedEmail
from ses_sender.models import Request
from ses_sender.tracking.classify import RequestShape, Signatures
from ses_sender.tracking.service import Judge
from ses_sender.transports.base import OutgoingEmail

JUDGE = Judge(Signatures.packaged(), timedelta(seconds=10))
_SHAPES = Path(__file__).parent / "vectors" / "request_shapes.json"


@dataclass(frozen=True)
class RecordedShape:
    name: str
    shape: RequestShape
    machine: bool
    reason: str

    def __str__(self) -> str:
        return self.name


def recorded_shapes(kind: str) -> list[RecordedShape]:
    """`kind`: "opens" or "clicks"."""
    document = json.loads(_SHAPES.read_text())
    return [
        RecordedShape(
            entry["name"],
            RequestShape(entry["method"], entry["userAgent"], entry["address"]),
            entry["machine"],
            entry["reason"],
        )
        for entry in document[kind]
    ]


async def fetch_as(client: httpx.AsyncClient, url: str, shape: RequestShape) -> httpx.Response:
    """Request `url` (path and query) as the recorded client did, from its address through a
    trusted proxy."""
    headers = {"user-agent": shape.user_agent}
    if shape.client_address is not None:
        headers["x-forwarded-for"] = shape.client_address
    return await client.request(shape.method, url, headers=headers)


def tampered(token: str, *, every: int) -> list[str]:
    """`token` with one character changed, at every `every`th place."""
    return [
        token[:i] + ("B" if token[i] == "A" else "A") + token[i + 1 :]
        for i in range(0, len(token), every)
    ]


def click_path(link: str) -> str:
    """The path of a tracked link in an email."""
    return "/v1/c/" + link.rsplit("/v1/c/", 1)[1]


DESKTOP_BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)


async def composed(runtime: Runtime, request_id: int) -> OutgoingEmail:
    """The email the worker would send for `request_id`, composed as the worker composes it."""
    async with runtime.sessionmaker() as session:
        row = await session.get(Request, request_id)
        assert row is not None
        content = (await delivery.contents(session, [row.content_id]))[row.content_id]
    composer = EmailComposer(
        sender="sender@example.com",
        public_base_url=runtime.settings.server_host,
        tokens=runtime.tokens,
        track_clicks=runtime.settings.track_clicks,
    )
    queued = QueuedEmail(
        row.id,
        row.topic_id,
        row.to,
        row.recipient_key,
        row.content_id,
        row.attempts + 1,
        lease_token=row.lease_token or 0,
        data=row.data,
    )
    return composer.compose(queued, content)


def tracked_links(html: str) -> list[str]:
    """The tracked links of an email, in order; the hidden honeypot last."""
    return [
        anchor.attrs["href"] or ""
        for anchor in LexborHTMLParser(html).css("a[href]")
        if "/v1/c/" in (anchor.attrs["href"] or "")
    ]
