from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ses_sender.errors import NotFound
from ses_sender.models import EventType
from ses_sender.tracking.classify import RequestShape
from ses_sender.tracking.dependencies import HitsDep, LinkTargetsDep, TokensDep
from ses_sender.tracking.links import HONEYPOT_POSITION
from ses_sender.tracking.service import Hit
from ses_sender.web.client import ClientAddressDep
from ses_sender.web.dependencies import NowDep

router = APIRouter(prefix="/v1/events", tags=["tracking"])
clicks_router = APIRouter(prefix="/v1/c", tags=["tracking"])

# The seed's 1x1 transparent PNG, byte for byte.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR4nGNgAAIAAAUAAXpeqz8AAAAASUVORK5CYII="
)
PIXEL_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate"}
# The redirect: never cached (each click counts), and the target never learns the token.
REDIRECT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
MAX_USER_AGENT_CHARS = 512  # kept of a user agent: enough for every real one


@router.get("/open", response_class=Response)
async def open_pixel(
    request: Request,
    tokens: TokensDep,
    hits: HitsDep,
    now: NowDep,
    client_address: ClientAddressDep,
    t: str = "",
) -> Response:
    """Always the pixel, at once; an open is recorded afterwards, and only for a genuine token."""
    request_id = tokens.open_request_id(t) if t else None
    if request_id is not None:
        hits.add(Hit(EventType.OPEN, request_id, now, _shape(request, client_address)))
    return Response(PIXEL_PNG, media_type="image/png", headers=PIXEL_HEADERS)


@clicks_router.get("/{token}", response_class=Response, status_code=302)
@clicks_router.head(
    "/{token}", response_class=Response, status_code=302, operation_id="follow_link_head"
)
async def follow_link(
    token: str,
    request: Request,
    tokens: TokensDep,
    targets: LinkTargetsDep,
    hits: HitsDep,
    now: NowDep,
    client_address: ClientAddressDep,
) -> Response:
    """A tracked link: 302 to the link's target in the stored email, at once; the click is
    recorded afterwards. A token that is not ours, or names no link, gets a 404 and counts
    nothing."""
    click = tokens.click(token)
    if click is None:
        raise NotFound("link not found")
    shape = _shape(request, client_address)
    if click.position == HONEYPOT_POSITION:
        hits.add(Hit(EventType.CLICK, click.request_id, now, shape))
        return Response(status_code=204, headers=REDIRECT_HEADERS)
    target = await targets.target(click)
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


def _shape(request: Request, client_address: str | None) -> RequestShape:
    user_agent = request.headers.get("user-agent", "")[:MAX_USER_AGENT_CHARS]
    return RequestShape(request.method, user_agent, client_address)
