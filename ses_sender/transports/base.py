"""What the delivery engine needs from a transport, declared here and nowhere else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with an email; `inline_id` set: shown in the HTML as `cid:<inline_id>`."""

    filename: str
    content_type: str
    data: bytes
    inline_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One email to one recipient, fully rendered."""

    request_id: int
    topic_id: str
    sender: str
    to: str
    subject: str
    html: str
    text: str
    # Extra MIME headers (e.g. List-Unsubscribe). Never internal ids: recipients see these.
    headers: tuple[tuple[str, str], ...] = ()
    # SES message tags (name, value); values already restricted to SES's alphabet.
    tags: tuple[tuple[str, str], ...] = field(default=())
    reply_to: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class SendingLimits:
    """What the provider says the account may send now (SES `GetAccount`)."""

    max_send_rate: float | None  # recipients per second; None: not reported
    max_24_hour_send: float | None  # None: unlimited or not reported
    sent_last_24_hours: float
    sending_enabled: bool

    @property
    def daily_quota_used(self) -> bool:
        return self.max_24_hour_send is not None and (
            self.sent_last_24_hours >= self.max_24_hour_send
        )


class SendError(Exception):
    """A send that did not go out. The subclass says what the queue should do about it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ThrottledError(SendError):
    """The provider is over its rate: requeue without counting an attempt, slow down."""


class TransientError(SendError):
    """May succeed later (5xx, timeout, connection error): retry with backoff."""


class PermanentError(SendError):
    """Will never succeed for this email (rejected, bad address, bad request): fail it now."""


class AccountPausedError(SendError):
    """Nothing can be sent by this account now (paused, suspended, daily quota): stop sending."""


class Transport(Protocol):
    name: str

    async def send(self, email: OutgoingEmail, *, on_sent: Callable[[], None] | None = None) -> str:
        """Send one email; return the provider's message id, or raise a `SendError`.

        `on_sent` is called once the email is on its way, as near to the provider's receiving
        it as the transport can tell (SES: the request handed to the socket; SMTP: as the
        transaction begins), unless the send fails before then.
        """
        ...

    async def close(self) -> None: ...


class LimitsSource(Protocol):
    async def sending_limits(self) -> SendingLimits | None:
        """The account's limits now; None if the provider cannot say. Raises `SendError`."""
        ...
