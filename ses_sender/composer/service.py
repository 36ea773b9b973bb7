"""Turning a claimed email and its content into the email its recipient receives: the message's
templates rendered for the recipient, tracked links, the open pixel, the one-click unsubscribe
headers, our SES tags, the text part. The delivery engine asks for it through its `Composer`
port.

What every recipient of one content shares is worked out once (`_prepare`): its links found
and replaced by slots for click tracking (in a templated content, in its templates), then for a
content sent as given the text part and the pixel's place, and for a templated one the
compiled templates. Each recipient's email is then the shared parts with their own links in the
slots; a templated link whose URL holds tags is rendered for the recipient on its own
(docs/decisions/0033-click-tracking-of-templated-links.md).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from jinja2 import TemplateError

from ses_sender.delivery.emails import ContentParts, QueuedEmail
from ses_sender.ses_tags import ses_tags
from ses_sender.templating import (
    CompiledParts,
    RenderError,
    compile_parts,
    describe_template_error,
    recipient_context,
    render_parts,
    text_of_html,
)
from ses_sender.tracking.links import (
    LINK_FUNCTION,
    UNTRACKED,
    ClickLinks,
    ContentLinks,
    RecipientLinks,
    Slotted,
    TrackedContent,
    cut,
)
from ses_sender.tracking.tokens import TrackingTokens
from ses_sender.transports.base import OutgoingEmail, PermanentError

PREPARED_CACHE_SIZE = 256  # contents; a campaign's recipients all share one
# RFC 8058 one-click unsubscribe: mailbox providers POST this body to the List-Unsubscribe URL.
ONE_CLICK_UNSUBSCRIBE = "List-Unsubscribe=One-Click"

_CLOSING_BODY = re.compile(r"</body\s*>", re.IGNORECASE)
_NOTHING = Slotted(("",), ())


@dataclass(frozen=True, slots=True)
class _Templates:
    """A templated content compiled once, and the data all its recipients share."""

    parts: CompiledParts
    shared: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What every recipient of one content shares: its tracked links and the slot they stand
    at (None: links not tracked). Sent as given: the text part, and the HTML split where the
    pixel goes (before the last </body>, or at the end), both with slots for the recipient's
    links. Templated: the compiled templates, with the slots (and calls that make rendered
    links) in them."""

    links: ContentLinks
    slot: str | None
    text: Slotted = _NOTHING
    html_head: Slotted = _NOTHING
    html_tail: str = ""
    templates: _Templates | None = None

    @property
    def tracks_clicks(self) -> bool:
        return self.slot is not None


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
        links = self._links.recipient_links(
            prepared.links, request_id=queued.request_id, content_id=queued.content_id
        )
        if prepared.templates is None:
            subject, text = content.subject, prepared.text.fill(links)
            html_head, html_tail = prepared.html_head.fill(links), prepared.html_tail
        else:
            subject, html, text = _render(prepared, queued, unsubscribe_url, links)
            html_head, html_tail = _split_for_pixel(html)
        pixel_url = self._pixel_base + self._tokens.for_open(queued.request_id)
        pixel = f'<img src="{pixel_url}" width="1" height="1" alt="">'
        if prepared.tracks_clicks:
            pixel = links.honeypot() + pixel
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
        tracks_clicks = self._track_clicks if content.track_clicks is None else content.track_clicks
        tracked = (
            _track(self._links, content_id, content)
            if tracks_clicks
            else TrackedContent(content.html, content.text, "", ())
        )
        slot = tracked.slot if tracks_clicks else None
        links = ContentLinks.of(tracked.links) if tracks_clicks else UNTRACKED
        if content.templated:
            templates = _compile(content_id, content, tracked, show_links=tracks_clicks)
            prepared = _Prepared(links, slot, templates=templates)
        else:
            if tracked.text is None:
                text = text_of_html(tracked.html, show_links=tracks_clicks)
            else:
                text = tracked.text
            head, tail = _split_for_pixel(tracked.html)
            prepared = _Prepared(links, slot, cut(text, slot), cut(head, slot), tail)
        self._prepared[content_id] = prepared
        if len(self._prepared) > PREPARED_CACHE_SIZE:
            self._prepared.popitem(last=False)
        return prepared


def _render(
    prepared: _Prepared, queued: QueuedEmail, unsubscribe_url: str, links: RecipientLinks
) -> tuple[str, str, str]:
    """This recipient's subject, HTML and text, with their own links."""
    templates = prepared.templates
    assert templates is not None
    context = recipient_context(
        templates.shared,
        queued.data,
        email=queued.recipient_key,
        request_id=queued.request_id,
        unsubscribe_url=unsubscribe_url,
    )
    if prepared.slot is None:
        return _rendered(templates.parts, context)
    context[LINK_FUNCTION] = links
    subject, html, text = _rendered(templates.parts, context)
    return subject, links.fill(html, prepared.slot), links.fill(text, prepared.slot)


def _rendered(parts: CompiledParts, context: dict[str, Any]) -> tuple[str, str, str]:
    try:
        return render_parts(parts, context)
    except RenderError as error:
        raise PermanentError(f"RenderingFailed: {error}") from error


def _track(links: ClickLinks, content_id: int, content: ContentParts) -> TrackedContent:
    try:
        return links.track(content.html, content.text, templated=content.templated)
    except TemplateError as error:
        raise _not_compiling(content_id, error) from error


def _compile(
    content_id: int, content: ContentParts, tracked: TrackedContent, *, show_links: bool
) -> _Templates:
    """Checked when the message was accepted, so a failure here is a stored content that no
    longer compiles: every one of its emails fails, each with the reason."""
    try:
        parts = compile_parts(content.subject, tracked.html, tracked.text, show_links=show_links)
    except TemplateError as error:
        raise _not_compiling(content_id, error) from error
    return _Templates(parts, orjson.loads(content.data) if content.data else {})


def _not_compiling(content_id: int, error: TemplateError) -> PermanentError:
    return PermanentError(
        f"RenderingFailed: content {content_id}: {describe_template_error(error)}"
    )


def _split_for_pixel(html: str) -> tuple[str, str]:
    # The last closing tag is after the last `</body` as nearly every email writes it: only
    # what follows that is searched, unless nothing there closes the body.
    written_as_usual = html.rfind("</body")
    closings = list(_CLOSING_BODY.finditer(html, max(0, written_as_usual)))
    if not closings and written_as_usual > 0:
        closings = list(_CLOSING_BODY.finditer(html))
    at = closings[-1].start() if closings else len(html)
    return html[:at], html[at:]
