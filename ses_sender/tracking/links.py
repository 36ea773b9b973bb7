"""Tracked links: which links of a content are rewritten, and where each one leads.

One function, `track_content`, reads a content both when it is sent (to rewrite it) and when a
link is clicked (to find what is at the link's position). A click token names only the
position, so the target never leaves our database: nobody can make us redirect anywhere else.
A content sent as given is parsed with the HTML5 algorithm (Lexbor, through selectolax), so
what counts as a link is what a mail client sees as one
(docs/decisions/0028-click-tracking-links-from-the-content.md). A template is tokenized
instead, its Jinja tags held aside, and only the start tags of its tracked links are written
anew: the rest of the template stays as written. A link whose URL holds template tags is
rendered again from the stored template and the recipient's stored data when it is clicked
(docs/decisions/0033-click-tracking-of-templated-links.md). Links in a text part are its
`http(s)://` URLs, as linkify-it finds them.
"""

from __future__ import annotations

import hashlib
import html as markup
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

from jinja2 import TemplateError
from linkify_it import LinkifyIt
from selectolax.lexbor import LexborHTMLParser

from ses_sender.templating import (
    MAX_RENDERED_PART_CHARS,
    UNSUBSCRIBE_URL_VARIABLE,
    HeldTags,
    RenderError,
    TemplateKind,
    compile_template,
    hold_tags,
    is_repeatable,
    render,
    template_variables,
    variables_set_within,
)
from ses_sender.tracking.tokens import TrackingTokens

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
_LINKED_TAGS = frozenset({"a", "area"})
# URLs written with their scheme only: a bare `example.com` in a text part is no link of ours.
_URLS_IN_TEXT = LinkifyIt(options={"fuzzy_link": False, "fuzzy_email": False, "fuzzy_ip": False})
_TEXT_SCHEMES = frozenset(f"{scheme}:" for scheme in TRACKED_SCHEMES)


@dataclass(frozen=True, slots=True)
class Target:
    url: str  # as the content has it (entities decoded, non-ASCII kept)
    location: str  # the URL as the redirect's Location header carries it: ASCII only
    fingerprint: int  # of the URL as written in the content; click tokens carry it


@dataclass(frozen=True, slots=True)
class LinkTemplate:
    """A link whose URL holds template tags: rendered for each recipient, from the stored
    template and the recipient's stored data, when the email is sent and when it is clicked."""

    source: str  # the URL as the template writes it, entities decoded: renders as plain text
    template: Any  # compiled

    def render(
        self, context: Mapping[str, Any], untracked_prefix: str
    ) -> tuple[str, Target | None]:
        """The URL for the recipient whose `context` it is, and its target if it is one we
        track; raises `RenderError`."""
        url = render(self.template, context, max_chars=MAX_RENDERED_PART_CHARS)
        return url, _target(url, untracked_prefix)


Link = Target | LinkTemplate
# What a tracked template calls for each link, and holds a rendered URL in: names no data can
# take, since the service's own names win over data.
LINK_FUNCTION = "ses_sender_link"
_RENDERED_URL = "ses_sender_url"


@dataclass(frozen=True, slots=True)
class TrackedContent:
    """A content (or its templates) with each tracked link's URL replaced by `slot` and the
    link's position, in the HTML and then in the text part given with it; `links[i]` is where
    link i leads."""

    html: str
    text: str | None  # None: no text part was given
    slot: str
    links: tuple[Link, ...]

    @property
    def distinct_links(self) -> int:
        """How many different links a recipient sees: each rendered link counts as its own."""
        written = {link.url for link in self.links if isinstance(link, Target)}
        return len(written) + sum(isinstance(link, LinkTemplate) for link in self.links)


@dataclass(frozen=True, slots=True)
class ContentLinks:
    """A content's tracked links as its recipients' links are made from them: `links[i]` is
    where link i leads; `sealed`, the position and fingerprint of each link whose URL is the
    same for every recipient, and the honeypot's last, worked out once per content."""

    links: tuple[Link, ...]
    sealed: tuple[tuple[int, int], ...]
    keys: tuple[str, ...]  # the sealed links' positions as their slots write them

    @classmethod
    def of(cls, links: tuple[Link, ...]) -> ContentLinks:
        written = (
            (position, link.fingerprint)
            for position, link in enumerate(links)
            if isinstance(link, Target)
        )
        sealed = (*written, (HONEYPOT_POSITION, 0))
        return cls(links, sealed, tuple(_slot_key(position) for position, _ in sealed))


UNTRACKED = ContentLinks((), (), ())  # a content whose links are left as they are: no honeypot


class RecipientLinks:
    """One recipient's link at each position: what fills the slots of a content tracked by
    `track_content`, and what its templates call (`LINK_FUNCTION`) with a `LinkTemplate`'s
    URL as rendered for the recipient. A URL we do not track comes back as it is; each
    position's link is made once, so the HTML and the text show the same."""

    __slots__ = ("_click_url", "_honeypot_url", "_links", "_made", "_untracked_prefix")

    def __init__(
        self,
        links: ContentLinks,
        urls: Sequence[str],
        click_url: Callable[[int, int], str],
        untracked_prefix: str,
    ) -> None:
        self._links = links.links
        # Keyed by the position as a slot writes it: filling a slot then parses no number.
        self._made = dict(zip(links.keys, urls, strict=True))
        self._honeypot_url = self._made.pop(_HONEYPOT_KEY, "")  # "": untracked, unused
        self._click_url = click_url  # of a position and a fingerprint
        self._untracked_prefix = untracked_prefix

    def __call__(self, position: int, rendered: str = "") -> str:
        key = _slot_key(position)
        url = self._made.get(key)
        if url is None:
            if not 0 <= position < len(self._links):
                raise RenderError(f"{LINK_FUNCTION}: no link {position}")
            # As plain text: from an HTML template it comes as Markup, which would go out
            # unescaped, and whose every string operation escapes.
            rendered = str(rendered)
            tracked = _tracked_fingerprint(rendered, self._untracked_prefix)
            url = rendered if tracked is None else self._click_url(position, tracked)
            self._made[key] = url
        return url

    def at(self, key: str) -> str:
        """The link of the slot numbered `key`, its position as the slot writes it."""
        return self._made.get(key) or self(int(key))

    def honeypot(self) -> str:
        """A link nobody can see or reach with a pointer or a keyboard: only a machine that
        follows every URL in the email follows it."""
        url = self._honeypot_url
        return f'<a href="{url}" style="display:none" aria-hidden="true" tabindex="-1"></a>'

    def fill(self, text: str, slot: str) -> str:
        """`text` (rendered from a template tracked with `slot`) with the link in each slot:
        `cut` and `Slotted.fill` in one pass."""
        first, *rest = text.split(slot)
        pieces = [first]
        for piece in rest:
            pieces.append(self.at(piece[:_POSITION_DIGITS]))
            pieces.append(piece[_POSITION_DIGITS:])
        return "".join(pieces)


@dataclass(frozen=True, slots=True)
class TrackedHtml:
    """A content with each tracked link's URL replaced by `slot` and the link's position;
    `targets[i]` is where link i leads."""

    html: str
    slot: str
    targets: tuple[Target, ...]


@dataclass(frozen=True, slots=True)
class Slotted:
    """A text with links to fill in: `parts[0]`, the URL of the link in slot `keys[0]`,
    `parts[1]`, and so on."""

    parts: tuple[str, ...]
    keys: tuple[str, ...]

    def fill(self, links: RecipientLinks) -> str:
        pieces = [self.parts[0]]
        for key, part in zip(self.keys, self.parts[1:], strict=True):
            pieces.append(links.at(key))
            pieces.append(part)
        return "".join(pieces)


def cut(text: str, slot: str | None) -> Slotted:
    """`text` (the tracked HTML, or text made from it) cut at its slots; whole without one."""
    if slot is None:
        return Slotted((text,), ())
    first, *rest = text.split(slot)
    return Slotted(
        (first, *(piece[_POSITION_DIGITS:] for piece in rest)),
        tuple(piece[:_POSITION_DIGITS] for piece in rest),
    )


class ClickLinks:
    """Rewrites a content's links (once per content), and makes each recipient's links."""

    def __init__(self, public_base_url: str, tokens: TrackingTokens) -> None:
        self._click_base = f"{public_base_url}/v1/c/"
        self.untracked_prefix = f"{public_base_url}/v1/"
        self._tokens = tokens

    def track(self, html: str, text: str | None, *, templated: bool) -> TrackedContent:
        return track_content(
            html, text, templated=templated, untracked_prefix=self.untracked_prefix
        )

    def recipient_links(
        self, links: ContentLinks, *, request_id: int, content_id: int
    ) -> RecipientLinks:
        """One recipient's links, those written the same for everyone all sealed at once."""
        tokens = self._tokens.for_clicks(request_id, content_id, links.sealed)

        def click_url(position: int, of_target: int) -> str:
            [token] = self._tokens.for_clicks(request_id, content_id, [(position, of_target)])
            return self._click_base + token

        return RecipientLinks(
            links,
            [self._click_base + token for token in tokens],
            click_url,
            self.untracked_prefix,
        )


def track_content(
    html: str, text: str | None, *, templated: bool, untracked_prefix: str
) -> TrackedContent:
    """Every link we track in a content, the HTML's first, then the given text part's. Each
    link's URL is replaced by a slot, except in a template a URL that holds tags: there, a call
    of `LINK_FUNCTION` (`ClickLinks.recipient_links`) with the URL as rendered."""
    slot = _new_slot()
    if templated:
        html, links = _track_template_html(html, slot, untracked_prefix)
    else:
        tracked = _track_html(html, slot, untracked_prefix)
        html, links = tracked.html, list(tracked.targets)
    if text is not None:
        text = _track_text(text, slot, links, untracked_prefix, templated=templated)
    return TrackedContent(html, text, slot, tuple(links))


def track_links(html: str, *, untracked_prefix: str) -> TrackedHtml:
    """Every http(s) link of `html` in document order, except those marked with
    `NOTRACK_ATTRIBUTE` and those that start with `untracked_prefix` (our own links, such as
    unsubscribe); the marker attribute is removed."""
    return _track_html(html, _new_slot(), untracked_prefix)


def _new_slot() -> str:
    # A slot no content can contain by chance: the HTML and text are cut at it.
    return f"ses-sender-link-{secrets.token_hex(12)}-"


def _slot(slot: str, position: int) -> str:
    return slot + _slot_key(position)


def _slot_key(position: int) -> str:
    return f"{position:0{_POSITION_DIGITS}d}"


_HONEYPOT_KEY = _slot_key(HONEYPOT_POSITION)


def _track_html(html: str, slot: str, untracked_prefix: str) -> TrackedHtml:
    document = LexborHTMLParser(html)
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
        attributes["href"] = _slot(slot, len(targets))
        targets.append(target)
    for marked in document.css(f"[{NOTRACK_ATTRIBUTE}]"):
        del marked.attrs[NOTRACK_ATTRIBUTE]
    return TrackedHtml(document.html or "", slot, tuple(targets))


@dataclass(frozen=True, slots=True)
class _StartTag:
    at: int  # where it starts in the source
    written: str  # as the source has it
    name: str
    attributes: list[tuple[str, str | None]]  # names lower-cased, values with entities decoded


class _StartTags(HTMLParser):
    """The start tags of a template's links, and of any element marked not to track, with
    where each stands: only these are written anew."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        # Where each line starts: the tokenizer tells a tag's place as a line and a column.
        self._line_starts = [0, *(newline.end() for newline in re.finditer("\n", source))]
        self.found: list[_StartTag] = []
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if (tag in _LINKED_TAGS and "href" in names) or NOTRACK_ATTRIBUTE in names:
            line, column = self.getpos()
            written = self.get_starttag_text() or ""
            self.found.append(_StartTag(self._line_starts[line - 1] + column, written, tag, attrs))


def _track_template_html(source: str, slot: str, untracked_prefix: str) -> tuple[str, list[Link]]:
    """The HTML template with its tracked links' URLs replaced (`_replacement`); the rest of
    it, tags and all, exactly as written. Raises `jinja2.TemplateError` for a
    template that does not compile."""
    held = hold_tags(source)
    readable = _readable_variables(source, TemplateKind.HTML)
    verbatim = held.verbatim()
    pieces: list[str] = []
    links: list[Link] = []
    done = 0
    for tag in _StartTags(held.source).found:
        if not held.source.startswith(tag.written, tag.at):
            continue  # not where the tokenizer said: left as written
        attributes = [(name, value) for name, value in tag.attributes if name != NOTRACK_ATTRIBUTE]
        href = None
        if len(attributes) == len(tag.attributes):
            written = next(value for name, value in attributes if name == "href") or ""
            link = _link(written, held, readable, untracked_prefix, _inside(tag.at, verbatim))
            if link is None or len(links) == MAX_TRACKED_LINKS:
                continue
            href = _replacement(slot, len(links), link)
            links.append(link)
        pieces += (held.source[done : tag.at], _start_tag(tag, attributes, href))
        done = tag.at + len(tag.written)
    tracked = held.restore("".join(pieces) + held.source[done:])
    try:
        compile_template(tracked, TemplateKind.HTML)
    except TemplateError:
        return source, []  # a template written in a way we do not follow: left alone
    return tracked, links


def _replacement(slot: str, position: int, link: Link) -> str:
    """What stands for the link at `position` in a template: its slot, or for a URL that holds
    tags the template source that renders it and makes the recipient's link of it."""
    if isinstance(link, Target):
        return _slot(slot, position)
    # Rendered as plain text, so the URL is the one a browser reads from the attribute; the
    # call's output is then escaped for HTML like any other.
    return (
        f"{{% set {_RENDERED_URL} %}}{{% autoescape false %}}{link.source}"
        f"{{% endautoescape %}}{{% endset %}}{{{{ {LINK_FUNCTION}({position}, {_RENDERED_URL}) }}}}"
    )


def _inside(at: int, spans: list[tuple[int, int]]) -> bool:
    return any(start <= at < end for start, end in spans)


def _start_tag(tag: _StartTag, attributes: list[tuple[str, str | None]], href: str | None) -> str:
    """The start tag written anew; `href`: what stands for the link's URL, as it is."""
    written = "".join(
        f" {name}"
        if value is None
        else f' {name}="{href if href is not None and name == "href" else markup.escape(value)}"'
        for name, value in attributes
    )
    return f"<{tag.name}{written}{'/>' if tag.written.endswith('/>') else '>'}"


def _track_text(
    text: str, slot: str, links: list[Link], untracked_prefix: str, *, templated: bool
) -> str:
    """The text part with its tracked URLs replaced (`_replacement`), numbered on from `links`,
    to which they are added."""
    held = hold_tags(text) if templated else HeldTags(text, ())
    readable = _readable_variables(text, TemplateKind.TEXT) if templated else frozenset()
    verbatim = held.verbatim() if templated else []
    found: list[Link] = []
    pieces: list[str] = []
    done = 0
    for match in _URLS_IN_TEXT.match(held.source) or ():
        if match.schema not in _TEXT_SCHEMES:
            continue
        written = held.source[match.index : match.last_index]
        link = _link(written, held, readable, untracked_prefix, _inside(match.index, verbatim))
        position = len(links) + len(found)
        if link is None or position == MAX_TRACKED_LINKS:
            continue
        pieces += (held.source[done : match.index], _replacement(slot, position, link))
        done = match.last_index
        found.append(link)
    tracked = "".join(pieces) + held.source[done:]
    if templated:
        tracked = held.restore(tracked)
        try:
            compile_template(tracked, TemplateKind.TEXT)
        except TemplateError:
            return text  # a template written in a way we do not follow: left alone
    links += found
    return tracked


def _readable_variables(source: str, kind: TemplateKind) -> frozenset[str]:
    """What a link's URL may read to be rendered again on its own: the template's context,
    except the unsubscribe URL (sealed anew each time) and what the template sets itself."""
    return (
        template_variables(source, kind)
        - variables_set_within(source, kind)
        - {UNSUBSCRIBE_URL_VARIABLE}
    )


def _link(
    written: str, held: HeldTags, readable: frozenset[str], untracked_prefix: str, verbatim: bool
) -> Link | None:
    """The link to track for a URL as a template has it (entities decoded, tags held), or
    None when it is not one we track: not http(s), ours, or rendered from what cannot be
    rendered again exactly when it is clicked. `verbatim`: within `{% raw %}`, where its tags
    are text."""
    if verbatim or not held.holds_a_tag(written):
        return _target(held.restore(written) if verbatim else written, untracked_prefix)
    source = held.restore(written)
    try:
        if not template_variables(source, TemplateKind.TEXT) <= readable:
            return None
        if not is_repeatable(source, TemplateKind.TEXT):
            return None
        return LinkTemplate(source, compile_template(source, TemplateKind.TEXT))
    except TemplateError:
        return None


def fingerprint(url: str) -> int:
    return int.from_bytes(hashlib.sha256(url.encode()).digest()[:4], "big")


def _target(href: str, untracked_prefix: str) -> Target | None:
    url = _unless_ours(href, untracked_prefix)
    location = None if url is None else _location(url)
    return None if url is None or location is None else Target(url, location, fingerprint(url))


def _tracked_fingerprint(href: str, untracked_prefix: str) -> int | None:
    """The fingerprint of `_target(href, untracked_prefix)`, without making its Location."""
    url = _unless_ours(href, untracked_prefix)
    return None if url is None or _followable(url) is None else fingerprint(url)


def _unless_ours(href: str, untracked_prefix: str) -> str | None:
    """`href` as a browser reads it, or None when it is one of our links (left untracked)."""
    url = href.strip().translate(_URL_IGNORED)
    return None if url.startswith(untracked_prefix) else url


def _followable(url: str) -> tuple[SplitResult, str, str, int | None] | None:
    """`url` split, with its scheme lower-cased, its host in ASCII (IDNA) and its port, when
    it is an http(s) URL a browser could follow; else None."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
        scheme = parts.scheme.lower()
        if scheme not in TRACKED_SCHEMES or not host or url[len(scheme) :][:3] != "://":
            return None
        # The IDNA codec is slow, and needed only for a host that is not ASCII already.
        ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return None
    return parts, scheme, ascii_host, port


def _location(url: str) -> str | None:
    """`url` as an ASCII URI (RFC 3987 section 3.1): the host in IDNA, the rest UTF-8 and
    percent-encoded; None when it is not an http(s) URL a browser could follow."""
    followable = _followable(url)
    if followable is None:
        return None
    parts, scheme, ascii_host, port = followable
    if ":" in ascii_host:
        ascii_host = f"[{ascii_host}]"
    user, at, _ = parts.netloc.rpartition("@")
    netloc = f"{quote(user, safe=_LOCATION_SAFE)}{at}{ascii_host}"
    if port is not None:
        netloc += f":{port}"
    rest = url[len(parts.scheme) + 3 + len(parts.netloc) :]
    return f"{scheme}://{netloc}{quote(rest, safe=_LOCATION_SAFE)}"
