"""Turning a claimed email and its content into the email its recipient receives: the open
pixel, tracked links, the one-click unsubscribe headers, our SES tags, the text part. The
delivery engine asks for it through its `Composer` port."""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

from inscriptis import get_text
from inscriptis.model.config import ParserConfig

from ses_sender.delivery.emails import ContentParts, QueuedEmail
from ses_sender.ses_tags import ses_tags
from ses_sender.tracking.links import ClickLinks, Slotted, Target, cut
from ses_sender.tracking.tokens import TrackingTokens
from ses_sender.transports.base import OutgoingEmail

PREPARED_CACHE_SIZE = 256  # contents; a campaign's recipients all share one
# RFC 8058 one-click unsubscribe: mailbox providers POST this body to the List-Unsubscribe URL.
ONE_CLICK_UNSUBSCRIBE = "List-Unsubscribe=One-Click"

_CLOSING_BODY = re.compile(r"</body\s*>", re.IGNORECASE)
# With tracked links, the text part shows each link's URL after its words, so a reader of the
# text part can follow it too.
_TEXT_WITH_LINKS = ParserConfig(display_links=True)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What every recipient of one content shares, worked out once: the text part, and the
    HTML split where the pixel goes (before the last </body>, or at the end), both with slots
    for the recipient's tracked links."""

    text: Slotted
    html_head: Slotted
    html_tail: str
    targets: tuple[Target, ...]
    tracks_clicks: bool


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
        pixel_url = self._pixel_base + self._tokens.for_open(queued.request_id)
        pixel = f'<img src="{pixel_url}" width="1" height="1" alt="">'
        links = self._links.urls(
            prepared.targets, request_id=queued.request_id, content_id=queued.content_id
        )
        if prepared.tracks_clicks:
            pixel = (
                self._links.honeypot(request_id=queued.request_id, content_id=queued.content_id)
                + pixel
            )
        return OutgoingEmail(
            request_id=queued.request_id,
            topic_id=queued.topic_id,
            sender=self._sender,
            to=queued.to,
            subject=content.subject,
            html=prepared.html_head.fill(links) + pixel + prepared.html_tail,
            text=prepared.text.fill(links),
            headers=self._unsubscribe_headers(queued.request_id),
            tags=ses_tags(queued.request_id, queued.topic_id),
        )

    def _unsubscribe_headers(self, request_id: int) -> tuple[tuple[str, str], ...]:
        link = self._unsubscribe_base + self._tokens.for_unsubscribe(request_id)
        return (
            ("List-Unsubscribe", f"<{link}>"),
            ("List-Unsubscribe-Post", ONE_CLICK_UNSUBSCRIBE),
        )

    def _prepare(self, content_id: int, content: ContentParts) -> _Prepared:
        prepared = self._prepared.get(content_id)
        if prepared is not None:
            self._prepared.move_to_end(content_id)
            return prepared
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
            text = get_text(html, _TEXT_WITH_LINKS).strip()
        else:
            html, slot, targets = content.html, None, ()
            text = get_text(html).strip()
        closings = list(_CLOSING_BODY.finditer(html))
        at = closings[-1].start() if closings else len(html)
        return _Prepared(cut(text, slot), cut(html[:at], slot), html[at:], targets, tracks_clicks)
