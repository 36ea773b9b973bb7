"""The MIME form of an `OutgoingEmail`, shared by the SMTP and outbox transports."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, parseaddr

from ses_sender.transports.base import Attachment, OutgoingEmail, PermanentError

# How SES's SMTP interface (and raw sends) take what the API gets as EmailTags/ConfigurationSetName.
SES_TAGS_HEADER = "X-SES-MESSAGE-TAGS"
SES_CONFIGURATION_SET_HEADER = "X-SES-CONFIGURATION-SET"


class _WirePolicy(EmailPolicy):
    """CRLF, 78-column folding, and 7bit so non-ASCII bodies become quoted-printable or base64
    (no relay needs 8BITMIME).

    The stdlib folds an ASCII token too long for one line by rewriting it as RFC 2047 encoded
    words. That breaks structured headers: List-Unsubscribe's `<https://...>` must stay literal
    for mailbox providers to act on it. Such a value is left on one long line instead (RFC 5322
    allows up to 998 characters).
    """

    def fold_binary(self, name: str, value: str) -> bytes:
        folded = super().fold_binary(name, value)
        text = str(value)
        if b"=?" in folded and text.isascii() and "=?" not in text:
            return _UNFOLDED.fold_binary(name, value)
        return folded


_POLICY = _WirePolicy(linesep="\r\n", cte_type="7bit")
_UNFOLDED = EmailPolicy(linesep="\r\n", cte_type="7bit", max_line_length=998)
# RFC 5322 field name: printable ASCII except the colon.
_HEADER_NAME = re.compile(r"[!-9;-~]+")
_DOMAIN = re.compile(r"[A-Za-z0-9.-]+")


@dataclass(frozen=True, slots=True)
class MimeMessage:
    message_id: str  # the Message-ID header without its angle brackets
    data: bytes


def build_message(
    email: OutgoingEmail, *, for_ses: bool = False, configuration_set: str | None = None
) -> MimeMessage:
    """A multipart/alternative (text, then HTML) message with a fresh Message-ID; with
    attachments, inside multipart/mixed, and inline images beside the HTML in
    multipart/related.

    `for_ses`: the message goes to SES, which reads the tag and configuration-set headers and
    strips them. Anywhere else they would reach the recipient, with our request id: left out.

    Raises `PermanentError` for content no retry can fix: a header name that is not a header
    name, a value with a line break, or a header that duplicates one this builder sets.
    """
    message_id = new_message_id(email.sender)
    extra_headers = list(email.headers)
    if for_ses and email.tags:
        extra_headers.append((SES_TAGS_HEADER, format_tags(email.tags)))
    if for_ses and configuration_set is not None:
        extra_headers.append((SES_CONFIGURATION_SET_HEADER, configuration_set))
    msg = EmailMessage(policy=_POLICY)
    try:
        msg["From"] = email.sender
        msg["To"] = email.to
        msg["Subject"] = email.subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = f"<{message_id}>"
        if email.reply_to:
            msg["Reply-To"] = ", ".join(email.reply_to)
        msg.set_content(email.text)
        msg.add_alternative(email.html, subtype="html")
        _attach(msg, email.attachments)
        # After the content, so that a caller's Content-Type collides loudly instead of
        # being dropped by set_content.
        for name, value in extra_headers:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"invalid header name {name!r}")
            msg[name] = value
        data = msg.as_bytes()
    except ValueError as exc:
        raise PermanentError(f"InvalidMessage: {exc}") from exc
    return MimeMessage(message_id=message_id, data=data)


def _attach(msg: EmailMessage, attachments: tuple[Attachment, ...]) -> None:
    """Inline parts go with the HTML (multipart/related), the others after the alternatives
    (multipart/mixed)."""
    html_part = None
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if attachment.inline_id is not None:
            if html_part is None:
                html_part = next(
                    part for part in msg.iter_parts() if part.get_content_type() == "text/html"
                )
            html_part.add_related(
                attachment.data,
                maintype,
                subtype,
                cid=f"<{attachment.inline_id}>",
                filename=attachment.filename,
                disposition="inline",
            )
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if attachment.inline_id is None:
            msg.add_attachment(attachment.data, maintype, subtype, filename=attachment.filename)


def new_message_id(sender: str) -> str:
    """A unique `local@domain` id on the sender's domain (never a DNS lookup, unlike make_msgid)."""
    domain = parseaddr(sender)[1].rpartition("@")[2]
    if not _DOMAIN.fullmatch(domain):
        domain = "localhost"
    return f"{uuid.uuid4().hex}@{domain}"


def format_tags(tags: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{name}={value}" for name, value in tags)
