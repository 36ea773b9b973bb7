"""What the engine moves: a claimed email with its content, and the result of trying to send
it, as the queue records it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ses_sender.models import StopReason


@dataclass(frozen=True, slots=True)
class QueuedEmail:
    """A claimed row: one email to one recipient, under this worker's lease."""

    request_id: int
    topic_id: str
    to: str  # as the To header shows it
    recipient_key: str  # the bare address, domain lower-cased: what suppression keys on
    content_id: int
    attempts: int  # counting this one


@dataclass(frozen=True, slots=True)
class ContentParts:
    """What every recipient of one message gets."""

    subject: str
    html: str
    track_clicks: bool | None = None  # None: as the composer does by default


@dataclass(frozen=True, slots=True)
class Sent:
    request_id: int
    message_id: str
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class Failed:
    request_id: int
    error: str


@dataclass(frozen=True, slots=True)
class Requeued:
    request_id: int
    due_at: datetime
    error: str | None
    counts_as_attempt: bool  # a throttle or an account pause was not this email's fault


SendResult = Sent | Failed | Requeued


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
