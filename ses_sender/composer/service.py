"""Turning a claimed email and its content into the email its recipient receives: the open
pixel, the one-click unsubscribe headers, our SES tags, the text part. The delivery engine asks
for it through its `Composer` port."""

from __future__ import annotations

import re
from collections import OrderedDict

from inscriptis import get_text

from ses_sender.delivery.emails import ContentParts, QueuedEmail
from ses_sender.ses_tags import ses_tags
from ses_sender.tracking.tokens import TrackingTokens
from ses_sender.transports.base import OutgoingEmail

TEXT_CACHE_SIZE = 256
# RFC 8058 one-click unsubscribe: mailbox providers POST this body to the List-Unsubscribe URL.
ONE_CLICK_UNSUBSCRIBE = "List-Unsubscribe=One-Click"

_CLOSING_BODY = re.compile(r"</body\s*>", re.IGNORECASE)


class EmailComposer:
    def __init__(self, *, sender: str, public_base_url: str, tokens: TrackingTokens) -> None:
        self._sender = sender
        self._pixel_base = f"{public_base_url}/v1/events/open?t="
        self._unsubscribe_base = f"{public_base_url}/v1/unsubscribe/"
        self._tokens = tokens
        # Every recipient of a campaign shares one content: derive its text part once.
        self._texts: OrderedDict[int, str] = OrderedDict()

    def compose(self, queued: QueuedEmail, content: ContentParts) -> OutgoingEmail:
        pixel_url = self._pixel_base + self._tokens.for_open(queued.request_id)
        return OutgoingEmail(
            request_id=queued.request_id,
            topic_id=queued.topic_id,
            sender=self._sender,
            to=queued.to,
            subject=content.subject,
            html=with_pixel(content.html, pixel_url),
            text=self._text(queued.content_id, content.html),
            headers=self._unsubscribe_headers(queued.request_id),
            tags=ses_tags(queued.request_id, queued.topic_id),
        )

    def _unsubscribe_headers(self, request_id: int) -> tuple[tuple[str, str], ...]:
        link = self._unsubscribe_base + self._tokens.for_unsubscribe(request_id)
        return (
            ("List-Unsubscribe", f"<{link}>"),
            ("List-Unsubscribe-Post", ONE_CLICK_UNSUBSCRIBE),
        )

    def _text(self, content_id: int, html: str) -> str:
        text = self._texts.get(content_id)
        if text is None:
            text = get_text(html).strip()
            self._texts[content_id] = text
            if len(self._texts) > TEXT_CACHE_SIZE:
                self._texts.popitem(last=False)
        else:
            self._texts.move_to_end(content_id)
        return text


def with_pixel(html: str, pixel_url: str) -> str:
    """The open pixel goes just before the last </body>, or at the end without one."""
    pixel = f'<img src="{pixel_url}" width="1" height="1" alt="">'
    closings = list(_CLOSING_BODY.finditer(html))
    if not closings:
        return html + pixel
    at = closings[-1].start()
    return html[:at] + pixel + html[at:]
