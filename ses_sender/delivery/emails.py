"""What the engine moves: a claimed email with its content, and the result of trying to send
it, as the queue records it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ses_sender.models import StopReason
from ses_sender.transports.base import Attachment


@dataclass(frozen=True, slots=True)
class QueuedEmail:
    """A claimed row: one email to one recipient, under this worker's lease."""

    request_id: int
    topic_id: str
    to: str  # as the To header shows it
    recipient_key: str  # the bare address, domain lower-cased: what suppression keys on
    content_id: int
    attempts: int  # counting this one
    lease_token: int  # the claim's: what this worker's writes about the row must match
    data: str | None = None  # this recipient's own template data, JSON, as stored


@dataclass(frozen=True, slots=True)
class ContentParts:
    """What every recipient of one message gets, or the templates of it when `templated`."""

    subject: str
    html: str
    text: str | None = None  # None: derived from the HTML
    templated: bool = False
    data: str | None = None  # the data all recipients share, JSON, as stored
    sender: str | None = None  # None: the default sender
    reply_to: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    attachments: tuple[Attachment, ...] = ()
    track_clicks: bool | None = None  # None: as the composer does by default

    @property
    def size(self) -> int:
        """Roughly what it holds in memory, in characters and bytes."""
        return (
            len(self.subject)
            + len(self.html)
            + len(self.text or "")
            + sum(len(attachment.data) for attachment in self.attachments)
        )


@dataclass(frozen=True, slots=True)
class Sent:
    request_id: int
    message_id: str
    sent_at: datetime
    lease_token: int


@dataclass(frozen=True, slots=True)
class Failed:
    request_id: int
    error: str
    lease_token: int


@dataclass(frozen=True, slots=True)
class Requeued:
    request_id: int
    due_at: datetime
    error: str | None
    counts_as_attempt: bool  # a throttle or an account pause was not this email's fault
    lease_token: int


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    """Handed to the provider, its answer never heard (the shutdown grace ended first): taken as
    sent, without a message id, so that it is never sent twice."""

    request_id: int
    at: datetime
    lease_token: int


SendResult = Sent | Failed | Requeued | Unconfirmed


@dataclass(frozen=True, slots=True)
class ProviderSend:
    """The provider's own word that it sent a request's email (an SES event): as which message,
    when, and when we heard it."""

    message_id: str
    sent_at: datetime
    reported_at: datetime


@dataclass(frozen=True, slots=True)
class Hold:
    """Not now: back to the queue, held until released (a paused topic)."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Never: Stopped, unsent, for `reason`; `error` says it to people."""

    reason: StopReason
    error: str


Verdict = Hold | Stop
