from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ses_sender.errors import NotFound
from ses_sender.models import EventType
from ses_sender.tracking.classify import RequestShape
from ses_sender.tracking.dependencies import HITS, LINK_TARGETS, TOKENS
from ses_sender.tracking.links import HONEYPOT_POSITION
from ses_sender.tracking.service import Hit
from ses_sender.web.client import client_address
from ses_sender.web.dependencies import CLOCK
from ses_sender.web.plain_route import PlainRoute

router = APIRouter(prefix="/v1/events", tags=["tracking"])
clicks_router = APIRouter(prefix="/v1/c", tags=["tracking"], route_class=PlainRoute)

# The seed's 1x1 transparent PNG, byte for byte.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR4nGNgAAIAAAUAAXpeqz8AAAAASUVORK5CYII="
)
PIXEL_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate"}
# The redirect: never cached (each click counts), and the target never learns the token.
REDIRECT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
MAX_USER_AGENT_CHARS = 512  # kept of a user agent: enough for every real one

# The pixel and the redirect take no dependencies from FastAPI: they read what they need from
# the app themselves. At 1,000 clicks/s in one process FastAPI's dependency solver cost more
# than the redirect itself (8 dependency levels: under cProfile 0.66 ms per click, against
# 0.2 ms for the endpoint); without it, and with these routes first in the route table, the
# API's CPU per click went from 1.00 to 0.76 ms (bench.redirect). The redirect is also served
# as a `PlainRoute`: FastAPI's handling of its one path parameter still cost 90 µs a click in
# the app, against 55 µs without it.


@router.get("/open", response_class=Response)
async def open_pixel(request: Request, t: str = "") -> Response:
    """Always the pixel, at once; an open is recorded afterwards, and only for a genuine token."""
    request_id = TOKENS.of(request).open_request_id(t) if t else None
    if request_id is not None:
        now = CLOCK.of(request).now()
        HITS.of(request).add(Hit(EventType.OPEN, request_id, now, _shape(request)))
    return Response(PIXEL_PNG, media_type="image/png", headers=PIXEL_HEADERS)


@clicks_router.get("/{token}", response_class=Response, status_code=302)
@clicks_router.head(
    "/{token}", response_class=Response, status_code=302, operation_id="follow_link_head"
)
async def follow_link(token: str, request: Request) -> Response:
    """A tracked link: 302 to the link's target in the stored email, at once; the click is
    recorded afterwards. A token that is not ours, or names no link, gets a 404 and counts
    nothing."""
    click = TOKENS.of(request).click(token)
    if click is None:
        raise NotFound("link not found")
    now = CLOCK.of(request).now()
    shape = _shape(request)
    hits = HITS.of(request)
    if click.position == HONEYPOT_POSITION:
        hits.add(Hit(EventType.CLICK, click.request_id, now, shape))
        return Response(status_code=204, headers=REDIRECT_HEADERS)
    target = await LINK_TARGETS.of(request).target(click)
    if target is None:
        raise NotFound("link not found")
    hits.add(
        Hit(
            EventType.CLICK,
            click.request_id,
            now,
            shape,
            url=target.url,
            links_in_email=target.links_in_email,
        )
    )
    return Response(status_code=302, headers={**REDIRECT_HEADERS, "Location": target.location})


def _shape(request: Request) -> RequestShape:
    user_agent = request.headers.get("user-agent", "")[:MAX_USER_AGENT_CHARS]
    return RequestShape(request.method, user_agent, client_address(request))
