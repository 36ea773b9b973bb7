"""Recipient addresses: validated, normalised, and keyed for de-duplication."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.policy import default as default_policy
from email.utils import formataddr

from email_validator import EmailNotValidError, validate_email

MAX_ADDRESS_LENGTH = 320
MAX_MAILBOX_LENGTH = 998  # a header line's limit, and the columns `to` and `from` are kept in

# email-validator is a large share of intake's time at 100,000 recipients; plain ASCII addresses
# (the WHATWG "valid e-mail address" grammar) take this path and everything else (display names,
# internationalised forms) the library's (docs/decisions/0014-intake-ids-then-bulk-insert.md).
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str  # what goes in the To header
    key: str  # what makes two recipients the same person: the address, domain lower-cased


def parse_recipient(raw: str) -> Recipient | None:
    """The recipient `raw` names, or None when it is not a deliverable address."""
    text = raw.strip()
    if not text or len(text) > MAX_MAILBOX_LENGTH or "\r" in text or "\n" in text:
        return None
    if len(text) <= MAX_ADDRESS_LENGTH and _PLAIN_ADDRESS.fullmatch(text):
        local, domain = text.rsplit("@", 1)
        if ".." in local or local.startswith(".") or local.endswith("."):
            return None
        key = f"{local}@{domain.lower()}"
        return Recipient(address=key, key=key)
    return _parse_slow(text)


def parse_mailbox(text: str) -> Address | None:
    """The one mailbox `text` names as an address header would read it (`Name <a@b.c>`), or
    None: malformed, or several addresses."""
    try:
        header = default_policy.header_factory("To", text)
    except (IndexError, ValueError, AttributeError, HeaderParseError):
        return None  # the standard parser's own failures on some malformed text (`a<`)
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    if header.defects or len(addresses) != 1:
        return None
    return addresses[0]


def _parse_slow(text: str) -> Recipient | None:
    name = ""
    bare = text
    if "<" in text:
        mailbox = parse_mailbox(text)
        if mailbox is None:
            return None
        name, bare = mailbox.display_name, mailbox.addr_spec
    try:
        # SES refuses non-ASCII local parts; internationalised domains go out as punycode.
        checked = validate_email(bare, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    key = f"{checked.local_part}@{checked.ascii_domain.lower()}"
    address = format_mailbox(name, key)
    return None if address is None else Recipient(address=address, key=key)


def format_mailbox(name: str, address: str) -> str | None:
    """`Name <address>` as the header shows it, or None when that is over `MAX_MAILBOX_LENGTH`
    (a name outside ASCII is encoded, about twice as long: the limit is the encoded one's)."""
    formatted = formataddr((name, address)) if name else address
    return formatted if len(formatted) <= MAX_MAILBOX_LENGTH else None


def recipient_key(address: str) -> str:
    """The key of an address another system reported (an SES event), to match ours.

    Ours when it parses; otherwise the text as given, trimmed, so nothing is lost.
    """
    recipient = parse_recipient(address)
    return address.strip() if recipient is None else recipient.key
