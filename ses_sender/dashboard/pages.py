"""Rendering: the templates, the static files (each served under its content's hash, with its
subresource integrity) and the headers every dashboard response carries."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import jinja2
from starlette.responses import Response

from ses_sender.dashboard.messages import translator

# Only this origin's scripts, styles, images and requests; no framing, no plugins; forms post
# here only. Inline scripts and styles are refused: the pages have none.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
PAGE_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "no-store", "Vary": "Accept-Language"}
STATIC_CACHE = "public, max-age=31536000, immutable"  # the URL changes with the content

_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    media_type: str
    version: str  # part of the content's hash, in the URL
    integrity: str  # sha384, for the page's `integrity` attribute

    @property
    def url(self) -> str:
        return f"/dashboard/static/{self.name}?v={self.version}"


def _load_assets() -> dict[str, Asset]:
    assets = {}
    for entry in resources.files("ses_sender.dashboard").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if suffix not in _MEDIA_TYPES:
            continue
        body = entry.read_bytes()
        assets[entry.name] = Asset(
            name=entry.name,
            body=body,
            media_type=_MEDIA_TYPES[suffix],
            version=hashlib.sha256(body).hexdigest()[:16],
            integrity="sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode(),
        )
    return assets


ASSETS = _load_assets()

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("ses_sender.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _number(value: int | float) -> str:
    """Thousands separated; a fraction to two places, without trailing zeros (0.25, 14)."""
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _percent(value: float) -> str:
    return f"{value:.2%}"


def _time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


_TEMPLATES.filters.update(number=_number, percent=_percent, time=_time)


def render(template: str, *, language: str, status_code: int = 200, **context: Any) -> Response:
    html = _TEMPLATES.get_template(template).render(
        t=translator(language), language=language, assets=ASSETS, **context
    )
    return Response(html, status_code=status_code, media_type="text/html", headers=PAGE_HEADERS)


def static_file(name: str) -> Response | None:
    asset = ASSETS.get(name)
    if asset is None:
        return None
    headers = {**SECURITY_HEADERS, "Cache-Control": STATIC_CACHE}
    return Response(asset.body, media_type=asset.media_type, headers=headers)
