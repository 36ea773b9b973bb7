"""Tracked links: which links of an HTML body are rewritten, and where each one leads.

One function, `track_links`, reads a content both when it is sent (to rewrite it) and when a
link is clicked (to find the target at the link's position). A click token names only the
position, so the target never leaves our database: nobody can make us redirect anywhere else.
Parsing is the HTML5 algorithm (Lexbor, through selectolax), so what counts as a link is what a
mail client sees as one (docs/decisions/0028-click-tracking-links-from-the-content.md).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from selectolax.lexbor import LexborHTMLParser

from ses_sender.tracking.tokens import ClickToken, TrackingTokens

# On a link: leave it alone. Removed from every email whose links are tracked.
NOTRACK_ATTRIBUTE = "data-ses-sender-notrack"
TRACKED_SCHEMES = frozenset({"http", "https"})
# Positions 0 to 65,534 name links; the last is the hidden honeypot link that only machines see.
HONEYPOT_POSITION = 0xFFFF
MAX_TRACKED_LINKS = HONEYPOT_POSITION
_POSITION_DIGITS = 5
# A browser drops these from anywhere in a URL (WHATWG URL standard, "basic URL parser").
_URL_IGNORED = str.maketrans("", "", "\t\n\r")
# Kept as they are in a Location header: the URL's own delimiters, and escapes already made.
_LOCATION_SAFE = "!#$%&'()*+,/:;=?@[]~"


@dataclass(frozen=True, slots=True)
class Target:
    url: str  # as the content has it (entities decoded, non-ASCII kept)
    location: str  # the URL as the redirect's Location header carries it: ASCII only
    fingerprint: int  # of the URL as written in the content; click tokens carry it


@dataclass(frozen=True, slots=True)
class TrackedHtml:
    """A content with each tracked link's URL replaced by `slot` and the link's position;
    `targets[i]` is where link i leads."""

    html: str
    slot: str
    targets: tuple[Target, ...]


@dataclass(frozen=True, slots=True)
class Slotted:
    """A text with links to fill in: `parts[0]`, the URL of link `positions[0]`, `parts[1]`,
    and so on."""

    parts: tuple[str, ...]
    positions: tuple[int, ...]

    def fill(self, urls: Sequence[str]) -> str:
        pieces = [self.parts[0]]
        for position, part in zip(self.positions, self.parts[1:], strict=True):
            pieces += (urls[position], part)
        return "".join(pieces)


def cut(text: str, slot: str | None) -> Slotted:
    """`text` (the tracked HTML, or text made from it) cut at its slots; whole without one."""
    if slot is None:
        return Slotted((text,), ())
    first, *rest = text.split(slot)
    return Slotted(
        (first, *(piece[_POSITION_DIGITS:] for piece in rest)),
        tuple(int(piece[:_POSITION_DIGITS]) for piece in rest),
    )


class ClickLinks:
    """Rewrites a content's links (once per content), and makes each recipient's links."""

    def __init__(self, public_base_url: str, tokens: TrackingTokens) -> None:
        self._click_base = f"{public_base_url}/v1/c/"
        self._untracked_prefix = f"{public_base_url}/v1/"
        self._tokens = tokens

    def rewrite(self, html: str) -> TrackedHtml:
        return track_links(html, untracked_prefix=self._untracked_prefix)

    def urls(self, targets: Sequence[Target], *, request_id: int, content_id: int) -> list[str]:
        """This recipient's link for each target, by position."""
        return [
            self._url(ClickToken(request_id, content_id, position, target.fingerprint))
            for position, target in enumerate(targets)
        ]

    def honeypot(self, *, request_id: int, content_id: int) -> str:
        """A link nobody can see or reach with a pointer or a keyboard: only a machine that
        follows every URL in the email follows it."""
        url = self._url(ClickToken(request_id, content_id, HONEYPOT_POSITION, 0))
        return f'<a href="{url}" style="display:none" aria-hidden="true" tabindex="-1"></a>'

    def _url(self, click: ClickToken) -> str:
        return self._click_base + self._tokens.for_click(click)


def track_links(html: str, *, untracked_prefix: str) -> TrackedHtml:
    """Every http(s) link of `html` in document order, except those marked with
    `NOTRACK_ATTRIBUTE` and those that start with `untracked_prefix` (our own links, such as
    unsubscribe); the marker attribute is removed."""
    document = LexborHTMLParser(html)
    # A slot no content can contain by chance: the serialised HTML is cut at it.
    slot = f"ses-sender-link-{secrets.token_hex(12)}-"
    targets: list[Target] = []
    for anchor in document.css("a[href], area[href]"):
        attributes = anchor.attrs
        if NOTRACK_ATTRIBUTE in attributes:
            del attributes[NOTRACK_ATTRIBUTE]
            continue
        href = attributes["href"] or ""
        target = _target(href, untracked_prefix)
        if target is None or len(targets) == MAX_TRACKED_LINKS:
            continue
        attributes["href"] = f"{slot}{len(targets):0{_POSITION_DIGITS}d}"
        targets.append(target)
    for marked in document.css(f"[{NOTRACK_ATTRIBUTE}]"):
        del marked.attrs[NOTRACK_ATTRIBUTE]
    return TrackedHtml(document.html or "", slot, tuple(targets))


def fingerprint(url: str) -> int:
    return int.from_bytes(hashlib.sha256(url.encode()).digest()[:4], "big")


def _target(href: str, untracked_prefix: str) -> Target | None:
    url = href.strip().translate(_URL_IGNORED)
    if url.startswith(untracked_prefix):
        return None
    location = _location(url)
    return None if location is None else Target(url, location, fingerprint(url))


def _location(url: str) -> str | None:
    """`url` as an ASCII URI (RFC 3987 section 3.1): the host in IDNA, the rest UTF-8 and
    percent-encoded; None when it is not an http(s) URL a browser could follow."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
        scheme = parts.scheme.lower()
        if scheme not in TRACKED_SCHEMES or not host or url[len(scheme) :][:3] != "://":
            return None
        ascii_host = host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return None
    if ":" in ascii_host:
        ascii_host = f"[{ascii_host}]"
    user, at, _ = parts.netloc.rpartition("@")
    netloc = f"{quote(user, safe=_LOCATION_SAFE)}{at}{ascii_host}"
    if port is not None:
        netloc += f":{port}"
    rest = url[len(parts.scheme) + 3 + len(parts.netloc) :]
    return f"{scheme}://{netloc}{quote(rest, safe=_LOCATION_SAFE)}"
