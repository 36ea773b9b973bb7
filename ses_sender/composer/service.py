"""Turning a claimed email and its content into the email its recipient receives: the message's
templates rendered for the recipient, tracked links, the open pixel, the one-click unsubscribe
headers, our SES tags, the text part. The delivery engine asks for it through its `Composer`
port.

What every recipient of one content shares is worked out once (`_prepare`): for a content sent
as given, its links rewritten for click tracking, the text part and the pixel's place, each
with slots for the recipient's tracked links; for a templated one, the compiled templates.
Links of templated content are not tracked: a click's target is read back from the stored
content, and a template's links are only known once rendered for one recipient.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from jinja2 import TemplateError

from ses_sender.delivery.emails import ContentParts, QueuedEmail
from ses_sender.ses_tags import ses_tags
from ses_sender.templating import (
    CompiledParts,
    RenderError,
    builtins,
    compile_parts,
    describe_template_error,
    render_parts,
)
from ses_sender.tracking.links import ClickLinks, Slotted, Target, cut
from ses_sender.tracking.tokens import TrackingTokens
from ses_sender.transports.base import OutgoingEmail, PermanentError

PREPARED_CACHE_SIZE = 256  # contents; a campaign's recipients all share one
# RFC 8058 one-click unsubscribe: mailbox providers POST this body to the List-Unsubscribe URL.
ONE_CLICK_UNSUBSCRIBE = "List-Unsubscribe=One-Click"

_CLOSING_BODY = re.compile(r"</body\s*>", re.IGNORECASE)
# With tracked links, the text part shows each link's URL after its words, so a reader of the
# text part can follow it too.
_TEXT_WITH_LINKS = ParserConfig(display_links=True)


@dataclass(frozen=True, slots=True)
class _Templates:
    """A templated content compiled once, and the data all its recipients share."""

    parts: CompiledParts
    shared: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What every recipient of one content shares. Sent as given: the text part, and the HTML
    split where the pixel goes (before the last </body>, or at the end), both with slots for
    the recipient's tracked links. Templated: the compiled templates."""

    text: Slotted
    html_head: Slotted
    html_tail: str
    targets: tuple[Target, ...]
    tracks_clicks: bool
    templates: _Templates | None = None


class EmailComposer:
    def __init__(
        self,
        *,
        sender: str,
        public_base_url: str,
        tokens: TrackingTokens,
        track_clicks: bool,
    ) -> None:
        self._sender = sender
        self._pixel_base = f"{public_base_url}/v1/events/open?t="
        self._unsubscribe_base = f"{public_base_url}/v1/unsubscribe/"
        self._tokens = tokens
        self._links = ClickLinks(public_base_url, tokens)
        self._track_clicks = track_clicks  # for a message that does not say
        self._prepared: OrderedDict[int, _Prepared] = OrderedDict()

    def compose(self, queued: QueuedEmail, content: ContentParts) -> OutgoingEmail:
        prepared = self._prepare(queued.content_id, content)
        unsubscribe_url = self._unsubscribe_base + self._tokens.for_unsubscribe(queued.request_id)
        if prepared.templates is None:
            links = self._links.urls(
                prepared.targets, request_id=queued.request_id, content_id=queued.content_id
            )
            subject, text = content.subject, prepared.text.fill(links)
            html_head, html_tail = prepared.html_head.fill(links), prepared.html_tail
        else:
            subject, html, text = _render(prepared.templates, queued, unsubscribe_url)
            html_head, html_tail = _split_for_pixel(html)
        pixel_url = self._pixel_base + self._tokens.for_open(queued.request_id)
        pixel = f'<img src="{pixel_url}" width="1" height="1" alt="">'
        if prepared.tracks_clicks:
            pixel = (
                self._links.honeypot(request_id=queued.request_id, content_id=queued.content_id)
                + pixel
            )
        return OutgoingEmail(
            request_id=queued.request_id,
            topic_id=queued.topic_id,
            sender=content.sender or self._sender,
            to=queued.to,
            subject=subject,
            html=html_head + pixel + html_tail,
            text=text,
            headers=(
                *content.headers,
                ("List-Unsubscribe", f"<{unsubscribe_url}>"),
                ("List-Unsubscribe-Post", ONE_CLICK_UNSUBSCRIBE),
            ),
            tags=(*ses_tags(queued.request_id, queued.topic_id), *content.tags),
            reply_to=content.reply_to,
            attachments=content.attachments,
        )

    def _prepare(self, content_id: int, content: ContentParts) -> _Prepared:
        prepared = self._prepared.get(content_id)
        if prepared is not None:
            self._prepared.move_to_end(content_id)
            return prepared
        if content.templated:
            prepared = _Prepared(
                cut("", None), cut("", None), "", (), False, _compile(content_id, content)
            )
        else:
            prepared = self._split(content)
        self._prepared[content_id] = prepared
        if len(self._prepared) > PREPARED_CACHE_SIZE:
            self._prepared.popitem(last=False)
        return prepared

    def _split(self, content: ContentParts) -> _Prepared:
        tracks_clicks = self._track_clicks if content.track_clicks is None else content.track_clicks
        if tracks_clicks:
            tracked = self._links.rewrite(content.html)
            html, slot, targets = tracked.html, tracked.slot, tracked.targets
        else:
            html, slot, targets = content.html, None, ()
        if content.text is not None:
            text = cut(content.text, None)  # the message's own text part, as given
        else:
            config = _TEXT_WITH_LINKS if tracks_clicks else None
            text = cut(get_text(html, config).strip(), slot)
        head, tail = _split_for_pixel(html)
        return _Prepared(text, cut(head, slot), tail, targets, tracks_clicks)


def _compile(content_id: int, content: ContentParts) -> _Templates:
    """Checked when the message was accepted, so a failure here is a stored content that no
    longer compiles: every one of its emails fails, each with the reason."""
    try:
        parts = compile_parts(content.subject, content.html, content.text)
    except TemplateError as error:
        raise PermanentError(
            f"RenderingFailed: content {content_id}: {describe_template_error(error)}"
        ) from error
    return _Templates(parts, orjson.loads(content.data) if content.data else {})


def _render(
    templates: _Templates, queued: QueuedEmail, unsubscribe_url: str
) -> tuple[str, str, str]:
    context = {
        **templates.shared,
        **(orjson.loads(queued.data) if queued.data else {}),
        **builtins(queued.recipient_key, unsubscribe_url, queued.request_id),
    }
    try:
        return render_parts(templates.parts, context)
    except RenderError as error:
        raise PermanentError(f"RenderingFailed: {error}") from error


def _split_for_pixel(html: str) -> tuple[str, str]:
    closings = list(_CLOSING_BODY.finditer(html))
    at = closings[-1].start() if closings else len(html)
    return html[:at], html[at:]
