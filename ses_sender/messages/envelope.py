"""Who a message is from and what travels with it: `from`, `replyTo`, custom headers, SES tags
and attachments, each checked when the message arrives."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ses_sender.errors import InvalidInput
from ses_sender.messages.addresses import (
    MAX_MAILBOX_LENGTH,
    format_mailbox,
    parse_mailbox,
    parse_recipient,
)
from ses_sender.messages.schemas import (
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    MAX_CUSTOM_HEADERS,
    MAX_FILENAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_REPLY_TO,
    MAX_TAGS,
    AttachmentIn,
)
from ses_sender.ses_tags import MAX_TAG_VALUE_LENGTH, REQUEST_ID_TAG, TOPIC_TAG
from ses_sender.transports.base import Attachment

# Headers the service writes itself, or that only the sending system may set.
OWNED_HEADERS = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        "subject",
        "reply-to",
        "return-path",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "message-id",
        "date",
        "mime-version",
        "received",
        "dkim-signature",
    }
)
OWNED_HEADER_PREFIXES = ("content-", "x-ses-")
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")  # RFC 5322: printable ASCII but the colon
_TAG = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_TAG_VALUE_LENGTH}}}")
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
_CONTENT_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,255}")


@dataclass(frozen=True, slots=True)
class SenderPolicy:
    """The senders a message may name in `from`: the default, and ALLOWED_SENDERS (addresses,
    or domains whose every address is allowed)."""

    default: str | None
    addresses: frozenset[str]
    domains: frozenset[str]

    @classmethod
    def of(cls, default: str | None, allowed: Sequence[str]) -> SenderPolicy:
        addresses = {entry.lower() for entry in allowed if "@" in entry.lstrip("@")}
        domains = {entry.lstrip("@").lower() for entry in allowed if "@" not in entry.lstrip("@")}
        if default is not None:
            bare = _bare_address(default)
            if bare is not None:
                addresses.add(bare.lower())
        return cls(default, frozenset(addresses), frozenset(domains))

    def allows(self, address: str) -> bool:
        lowered = address.lower()
        return lowered in self.addresses or lowered.rpartition("@")[2] in self.domains


def check_sender(value: str | None, policy: SenderPolicy, where: str) -> str | None:
    """`from` as the header will show it; None: the default sender."""
    if value is None:
        return None
    text = value.strip()
    parsed = _parse_mailbox(text)
    if parsed is None:
        raise InvalidInput(f"{where}: expected one address, e.g. Shop <shop@example.com>")
    name, address = parsed
    if not policy.allows(address):
        raise InvalidInput(
            f"{where}: {address} is not an allowed sender (EMAIL_SENDER or ALLOWED_SENDERS)"
        )
    formatted = format_mailbox(name, address)
    if formatted is None:
        raise InvalidInput(
            f"{where}: at most {MAX_MAILBOX_LENGTH} characters, a name outside ASCII encoded"
        )
    return formatted


def check_reply_to(value: str | list[str] | None, where: str) -> tuple[str, ...]:
    entries = [value] if isinstance(value, str) else list(value or ())
    if len(entries) > MAX_REPLY_TO:
        raise InvalidInput(f"{where}: at most {MAX_REPLY_TO} addresses")
    addresses = []
    for index, entry in enumerate(entries):
        recipient = parse_recipient(entry)
        if recipient is None:
            place = where if isinstance(value, str) else f"{where}[{index}]"
            raise InvalidInput(f"{place}: invalid email address: {entry.strip()}")
        addresses.append(recipient.address)
    return tuple(addresses)


def check_headers(headers: Mapping[str, str] | None, where: str) -> tuple[tuple[str, str], ...]:
    if not headers:
        return ()
    if len(headers) > MAX_CUSTOM_HEADERS:
        raise InvalidInput(f"{where}: at most {MAX_CUSTOM_HEADERS} headers")
    checked = []
    seen: set[str] = set()
    for name, value in headers.items():
        place = f"{where}.{name}"
        lowered = name.lower()
        if not _HEADER_NAME.fullmatch(name):
            raise InvalidInput(
                f"{place}: a header name is 1 to 76 printable ASCII characters, no colon"
            )
        if lowered in OWNED_HEADERS or lowered.startswith(OWNED_HEADER_PREFIXES):
            raise InvalidInput(f"{place}: this header is set by the service and cannot be given")
        if lowered in seen:
            raise InvalidInput(f"{place}: given twice")
        seen.add(lowered)
        if not value.isascii() or not value.isprintable() or not value.strip():
            raise InvalidInput(f"{place}: the value must be printable ASCII, without line breaks")
        if len(value) > MAX_HEADER_VALUE_LENGTH:
            raise InvalidInput(f"{place}: at most {MAX_HEADER_VALUE_LENGTH} characters")
        checked.append((name, value))
    return tuple(checked)


def check_tags(tags: Mapping[str, str] | None, where: str) -> tuple[tuple[str, str], ...]:
    if not tags:
        return ()
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"{where}: at most {MAX_TAGS} tags")
    for name, value in tags.items():
        place = f"{where}.{name}"
        if not _TAG.fullmatch(name) or not _TAG.fullmatch(value):
            raise InvalidInput(
                f"{place}: tag names and values are 1 to {MAX_TAG_VALUE_LENGTH} ASCII letters, "
                f"digits, '_' or '-'"
            )
        if name in (REQUEST_ID_TAG, TOPIC_TAG):
            raise InvalidInput(f"{place}: this tag is set by the service and cannot be given")
    return tuple(tags.items())


def check_attachments(
    attachments: Sequence[AttachmentIn] | None, where: str
) -> tuple[Attachment, ...]:
    if not attachments:
        return ()
    if len(attachments) > MAX_ATTACHMENTS:
        raise InvalidInput(f"{where}: at most {MAX_ATTACHMENTS} attachments")
    checked = []
    total = 0
    inline_ids: set[str] = set()
    for index, attachment in enumerate(attachments):
        place = f"{where}[{index}]"
        filename = attachment.filename.strip()
        if not filename or len(filename) > MAX_FILENAME_LENGTH or not filename.isprintable():
            raise InvalidInput(f"{place}.filename: 1 to {MAX_FILENAME_LENGTH} printable characters")
        if not _MEDIA_TYPE.fullmatch(attachment.content_type.strip()):
            raise InvalidInput(f"{place}.contentType: expected a media type, e.g. image/png")
        inline_id = attachment.content_id
        if inline_id is not None:
            if not _CONTENT_ID.fullmatch(inline_id) or inline_id in inline_ids:
                raise InvalidInput(
                    f"{place}.contentId: 1 to 255 characters of an address, unique in the message"
                )
            inline_ids.add(inline_id)
        try:
            data = base64.b64decode(attachment.content, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{place}.content: not valid base64") from None
        total += len(data)
        if total > MAX_ATTACHMENT_BYTES:
            raise InvalidInput(
                f"{place}.content: a message's attachments are at most {MAX_ATTACHMENT_BYTES} "
                f"bytes in all, decoded"
            )
        checked.append(
            Attachment(filename, attachment.content_type.strip().lower(), data, inline_id)
        )
    return tuple(checked)


def _parse_mailbox(text: str) -> tuple[str, str] | None:
    if not text or "\r" in text or "\n" in text:
        return None
    mailbox = parse_mailbox(text)
    if mailbox is None:
        return None
    recipient = parse_recipient(mailbox.addr_spec)
    if recipient is None:
        return None
    return mailbox.display_name, recipient.key


def _bare_address(text: str) -> str | None:
    parsed = _parse_mailbox(text)
    return None if parsed is None else parsed[1]
