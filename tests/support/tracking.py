"""Opens and clicks as clients make them: recorded request shapes, the judge the app uses, and
the HTTP calls of a recipient's mail client."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from ses_sender.tracking.classify import RequestShape, Signatures
from ses_sender.tracking.service import Judge

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


def click_path(link: str) -> str:
    """The path of a tracked link in an email."""
    return "/v1/c/" + link.rsplit("/v1/c/", 1)[1]


DESKTOP_BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
