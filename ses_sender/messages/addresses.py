"""Recipient addresses: validated, normalised, and keyed for de-duplication."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formataddr, parseaddr

from email_validator import EmailNotValidError, validate_email

MAX_ADDRESS_LENGTH = 320

# email-validator costs ~17 µs an address, a third of the ingest budget at 100,000 recipients
# (bench/ingest.py); plain ASCII addresses (the WHATWG "valid e-mail address" grammar) take this
# ~0.2 µs path and everything else (display names, internationalised forms) the library's.
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
    if not text or len(text) > 998 or "\r" in text or "\n" in text:
        return None
    if len(text) <= MAX_ADDRESS_LENGTH and _PLAIN_ADDRESS.fullmatch(text):
        local, domain = text.rsplit("@", 1)
        if ".." in local or local.startswith(".") or local.endswith("."):
            return None
        key = f"{local}@{domain.lower()}"
        return Recipient(address=key, key=key)
    return _parse_slow(text)


def _parse_slow(text: str) -> Recipient | None:
    name, bare = parseaddr(text, strict=True)
    if not bare:
        return None
    try:
        checked = validate_email(bare, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None
    key = f"{checked.local_part}@{checked.domain.lower()}"
    return Recipient(address=formataddr((name, key)) if name else key, key=key)
