"""The link in every email's List-Unsubscribe header: no API key, no login, plain pages.

RFC 8058: a mailbox provider POSTs `List-Unsubscribe=One-Click` and the address is unsubscribed
at once. A person who opens the link gets a page with a button that POSTs the same form, so a
link scanner that only GETs never unsubscribes anyone.
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ses_sender.tracking.dependencies import TokensDep
from ses_sender.unsubscribe import pages, service
from ses_sender.unsubscribe.dependencies import SenderDep
from ses_sender.web.body import read_body
from ses_sender.web.dependencies import NowDep, SessionDep

router = APIRouter(prefix="/v1/unsubscribe", tags=["unsubscribe"])

# The form is one short field; anything much larger is not a one-click request.
MAX_FORM_BYTES = 8 * 1024
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"

# The pages hold the token in their URL: keep it out of caches, referrers, frames and indexes.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    # The same link reads in the reader's language.
    "Vary": "Accept-Language",
}


@router.get("/{token}", response_class=HTMLResponse)
async def confirm_page(
    token: str, request: Request, tokens: TokensDep, session: SessionDep, sender: SenderDep
) -> HTMLResponse:
    """A page where a person confirms; opening it changes nothing."""
    language = pages.language_of(request.headers.get("accept-language"))
    request_id = tokens.unsubscribe_request_id(token)
    address = None if request_id is None else await service.recipient_of(session, request_id)
    if address is None:
        return _page(404, pages.page_text(language, "not_found"))
    text = pages.page_text(
        language, "confirm", sender=sender, address=pages.mask_address(address), button=True
    )
    return _page(200, text)


@router.post("/{token}", response_class=HTMLResponse)
async def unsubscribe(
    token: str,
    request: Request,
    tokens: TokensDep,
    session: SessionDep,
    now: NowDep,
    sender: SenderDep,
) -> HTMLResponse:
    """One-click unsubscribe: the form `List-Unsubscribe=One-Click`, url-encoded or multipart."""
    language = pages.language_of(request.headers.get("accept-language"))
    request_id = tokens.unsubscribe_request_id(token)
    if request_id is None:
        return _page(404, pages.page_text(language, "not_found"))
    body = await read_body(request, MAX_FORM_BYTES)
    if not asks_one_click(request.headers.get("content-type", ""), body):
        return _page(400, pages.page_text(language, "not_one_click"))
    address = await service.unsubscribe(session, request_id, now=now)
    if address is None:
        return _page(404, pages.page_text(language, "not_found"))
    text = pages.page_text(language, "done", sender=sender, address=pages.mask_address(address))
    return _page(200, text)


def asks_one_click(content_type: str, body: bytes) -> bool:
    """Whether the form carries List-Unsubscribe=One-Click (RFC 8058 allows either encoding)."""
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        values = _multipart_values(content_type, body, ONE_CLICK_FIELD)
    else:
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        values = fields.get(ONE_CLICK_FIELD, [])
    return any(value.strip() == ONE_CLICK_VALUE for value in values)


def _multipart_values(content_type: str, body: bytes, name: str) -> list[str]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", errors="replace")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return []
    values: list[str] = []
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") != name:
            continue
        try:
            content = part.get_content()
        except (LookupError, ValueError):  # an unknown charset or a broken encoding
            continue
        if isinstance(content, str):
            values.append(content)
    return values


def _page(status_code: int, text: pages.PageText) -> HTMLResponse:
    html = pages.render(text, form_field=ONE_CLICK_FIELD, form_value=ONE_CLICK_VALUE)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
