"""Message templates: Jinja2 in its sandbox, checked once when a message arrives, compiled once
per content and rendered per recipient within a size bound and a work budget.

A template sees only its context (the message's and the recipient's data, and the built-ins):
the sandbox refuses attribute access to anything unsafe, and `StrictUndefined` turns a missing
variable into an error instead of an empty string. Its work is bounded by
`ses_sender.template_sandbox`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from jinja2 import (
    ChainableUndefined,
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
    meta,
    nodes,
)
from jinja2.lexer import TOKEN_RAW_BEGIN, TOKEN_RAW_END
from jinja2.nodes import Template as TemplateNode
from markupsafe import escape

from ses_sender.template_sandbox import BoundedSandbox, WorkExceeded, bounded_tree, work_budget

# Variables every template may use without the client giving them.
EMAIL_VARIABLE = "email"
UNSUBSCRIBE_URL_VARIABLE = "unsubscribe_url"
REQUEST_ID_VARIABLE = "request_id"
BUILTIN_VARIABLES = frozenset({EMAIL_VARIABLE, UNSUBSCRIBE_URL_VARIABLE, REQUEST_ID_VARIABLE})

# Documented in the README ("Limits"): what one recipient's rendered email may hold.
MAX_RENDERED_SUBJECT_CHARS = 998
MAX_RENDERED_PART_CHARS = 10 * 1024 * 1024  # the HTML, and the text


class TemplateKind(enum.Enum):
    SUBJECT = "subject"
    HTML = "content"
    TEXT = "text"


class RenderError(Exception):
    """A template that could not be rendered for one recipient (too large, or it failed)."""


class RenderWorkExceeded(RenderError):
    """A template that would work past its budget, or call itself without end: for every
    recipient alike, whatever their data."""


_PLAIN = BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_HTML = BoundedSandbox(undefined=StrictUndefined, autoescape=True, keep_trailing_newline=True)
# For a trial render without data: a missing variable is empty, and chains on.
_TRIAL = BoundedSandbox(undefined=ChainableUndefined, autoescape=True)
# Every break `str.splitlines` knows: the email package refuses a header holding any of them.
_LINE_BREAKS = re.compile("[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")
_JINJA_TOKEN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
# Private-use characters: they survive HTML-to-text and appear in no one's template.
_PLACEHOLDER = "\ue000{}\ue001"
_PLACEHOLDER_PATTERN = re.compile("\ue000(\\d+)\ue001")
_STATEMENT_KEYWORD = re.compile(r"\{%[-+]?\s*(\w+)")
# Where the text part shows a link's URL after its words (`[words](url)`): when links are
# tracked, so that a reader of the text part can follow them too.
_TEXT_WITH_LINKS = ParserConfig(display_links=True)
# Whose output is not the same every time: a link that uses one cannot be rendered again.
_UNREPEATABLE = frozenset({"random", "lipsum"})


def _environment(kind: TemplateKind) -> BoundedSandbox:
    return _HTML if kind is TemplateKind.HTML else _PLAIN


def _parse(source: str, kind: TemplateKind) -> TemplateNode:
    """`source` parsed; raises `jinja2.TemplateError` for a syntax error, for an expression
    nested deeper than the parser can follow, and for a `{% raw %}` never closed (which Jinja
    takes as text when it ends the template)."""
    environment = _environment(kind)
    try:
        tree: TemplateNode = environment.parse(source)
    except RecursionError:
        raise TemplateSyntaxError("nested too deeply", 1) from None
    if "raw" in source:
        tokens = [token for _, token, _ in environment.lex(source)]
        if tokens.count(TOKEN_RAW_BEGIN) != tokens.count(TOKEN_RAW_END):
            raise TemplateSyntaxError("Missing end of raw directive", 1)
    return tree


def _compiled(tree: TemplateNode, kind: TemplateKind) -> Any:
    """The template compiled from `tree`; blocks nested past what Python's compiler takes (21
    loops: a `SyntaxError`; about 100 blocks: an `IndentationError`, which is one) are a
    `jinja2.TemplateError`."""
    try:
        compiled = _environment(kind).from_string(bounded_tree(tree))
    except (RecursionError, SyntaxError):
        raise TemplateSyntaxError("nested too deeply", 1) from None
    return Substitution.of(tree, compiled, escapes=kind is TemplateKind.HTML) or compiled


@dataclass(frozen=True, slots=True)
class Substitution:
    """A template that only writes values of its data between runs of text (`Hello {{ name
    }}`), as most personal emails' are: rendered by joining the text with the values as Jinja
    writes them (escaped in HTML, `str` in a subject or text), without Jinja's context and
    generator. Those took most of such a render: 3.7 of 4.2 µs for a subject, 5.3 of 6.8 for
    the benchmark's HTML.

    `pieces` alternate text and names, text first and last. What it cannot render this way
    (a name missing from the data, a value that fails to convert) goes to `template`, the same
    template compiled by Jinja, which fails as it always has."""

    pieces: tuple[str, ...]
    template: Any
    escapes: bool

    @classmethod
    def of(cls, tree: TemplateNode, template: Any, *, escapes: bool) -> Substitution | None:
        pieces = [""]
        for output in tree.body:
            if not isinstance(output, nodes.Output):
                return None
            for node in output.nodes:
                if isinstance(node, nodes.TemplateData):
                    pieces[-1] += node.data
                elif isinstance(node, nodes.Name) and node.ctx == "load" and node.name != "self":
                    # (`self` is Jinja's own: the template's reference, whatever the data says)
                    pieces += (node.name, "")
                else:
                    return None
        return cls(tuple(pieces), template, escapes)

    def render(self, context: Mapping[str, Any]) -> str | None:
        """The rendered text, or None for what only `template` can render."""
        pieces = self.pieces
        convert = escape if self.escapes else str
        written = [pieces[0]]
        try:
            for at in range(1, len(pieces), 2):
                written.append(convert(context[pieces[at]]))
                written.append(pieces[at + 1])
        except Exception:  # Jinja's render of `template` says what went wrong
            return None
        return "".join(written)


def compile_template(source: str, kind: TemplateKind) -> Any:
    """The compiled template, its work bounded; raises `jinja2.TemplateError` for a syntax
    error."""
    return _compiled(_parse(source, kind), kind)


def template_variables(source: str, kind: TemplateKind) -> frozenset[str]:
    """The variables `source` reads from its context, by static analysis; raises
    `jinja2.TemplateError` for a syntax error."""
    return compile_with_variables(source, kind)[0]


def compile_with_variables(source: str, kind: TemplateKind) -> tuple[frozenset[str], Any]:
    """The variables `source` reads from its context, by static analysis, and the compiled
    template (which catches what parsing alone lets through: an unknown filter, say); raises
    `jinja2.TemplateError` for a syntax error."""
    tree = _parse(source, kind)
    try:
        variables = frozenset(meta.find_undeclared_variables(tree))
    except RecursionError:
        raise TemplateSyntaxError("nested too deeply", 1) from None
    return variables, _compiled(tree, kind)


def describe_template_error(error: TemplateError) -> str:
    line = getattr(error, "lineno", None)
    where = f" (line {line})" if line else ""
    return f"template error{where}: {error.message or type(error).__name__}"


def render(template: Any, context: Mapping[str, Any], *, max_chars: int) -> str:
    """`template` rendered with `context`, refused once its output passes `max_chars`: a loop
    cannot make an email of unbounded size. Its work is spent from the budget of the render
    around it (`render_parts`), or one of its own."""
    if isinstance(template, Substitution):
        text = template.render(context)
        if text is not None:
            if len(text) > max_chars:
                raise RenderError(f"rendered output over {max_chars} characters")
            return text
        template = template.template
    parts: list[str] = []
    size = 0
    try:
        with work_budget():
            # What `Template.generate` runs, less its copy of the context and the generator it
            # wraps around this one: 1.5 of the 4 µs a short subject took (and errors reach the
            # handlers below as they were raised, not re-raised by Jinja's handler).
            for part in template.root_render_func(template.new_context(context)):
                size += len(part)
                if size > max_chars:
                    raise RenderError(f"rendered output over {max_chars} characters")
                parts.append(part)
    except TemplateError as error:
        raise RenderError(describe_template_error(error)) from error
    except RenderError:
        raise
    except WorkExceeded as error:
        raise RenderWorkExceeded(f"template error: {error}") from None
    except RecursionError:
        raise RenderWorkExceeded("template error: calls nested too deeply") from None
    # The sandbox's own advice: a template may raise anything (a division by zero, an
    # overflow, the work budget spent), and each is this template's failure.
    except Exception as error:
        raise RenderError(f"template error: {error or type(error).__name__}") from None
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class HeldTags:
    """A template's source with each of its tags (`{{ }}`, `{% %}`, `{# #}`) held in a
    placeholder of private-use characters, which no one's template contains and which HTML
    parsers and link finders take as ordinary text."""

    source: str
    tags: tuple[str, ...]

    def restore(self, text: str) -> str:
        """`text` (made from the held source) with its placeholders back to the tags."""
        return _PLACEHOLDER_PATTERN.sub(lambda match: self.tags[int(match.group(1))], text)

    def kept(self, text: str) -> list[int]:
        """The tags whose placeholders `text` holds, by index, in order."""
        return [int(index) for index in _PLACEHOLDER_PATTERN.findall(text)]

    def holds_a_tag(self, text: str) -> bool:
        return bool(self.tags) and _PLACEHOLDER_PATTERN.search(text) is not None

    def verbatim(self) -> list[tuple[int, int]]:
        """Where the held source is inside `{% raw %}` blocks: text, whatever it looks like."""
        spans: list[tuple[int, int]] = []
        opened: int | None = None
        for match in _PLACEHOLDER_PATTERN.finditer(self.source):
            keyword = _STATEMENT_KEYWORD.match(self.tags[int(match.group(1))])
            if keyword is None:
                continue
            if keyword.group(1) == "raw" and opened is None:
                opened = match.end()
            elif keyword.group(1) == "endraw" and opened is not None:
                spans.append((opened, match.start()))
                opened = None
        if opened is not None:
            spans.append((opened, len(self.source)))
        return spans


def hold_tags(source: str) -> HeldTags:
    tags: list[str] = []

    def hold(match: re.Match[str]) -> str:
        tags.append(match.group(0))
        return _PLACEHOLDER.format(len(tags) - 1)

    return HeldTags(_JINJA_TOKEN.sub(hold, source), tuple(tags))


def text_template_from_html(html_source: str, *, show_links: bool = False) -> str | None:
    """The plain-text form of an HTML template, as a text template: its text derived from the
    HTML once, with the template's tags kept where they stood, instead of the HTML rendered and
    converted for every recipient. None when that cannot be done faithfully (a block tag dropped
    with the markup around it, or the result not a valid template)."""
    held = hold_tags(html_source)
    text = get_text(held.source, _TEXT_WITH_LINKS if show_links else None).strip()
    kept = held.kept(text)
    # An expression may go with its markup (a link's href), as it would from the rendered HTML;
    # a block tag may not: its block would lose an end.
    statements = [i for i, tag in enumerate(held.tags) if tag.startswith("{%")]
    if kept != sorted(set(kept)) or not set(statements) <= set(kept):
        return None
    source = held.restore(text)
    try:
        compile_template(source, TemplateKind.TEXT)
    except TemplateError:
        return None
    return source


def variables_set_within(source: str, kind: TemplateKind) -> frozenset[str]:
    """The names `source` gives values itself (a loop's, `set`, `with`, a macro's parameters):
    a part of the template that reads one cannot be rendered apart from the rest."""
    tree = _parse(source, kind)
    return frozenset(
        name.name for name in tree.find_all(nodes.Name) if name.ctx in ("store", "param")
    )


def is_repeatable(template_source: str, kind: TemplateKind) -> bool:
    """Whether rendering `template_source` twice with the same data gives the same output: it
    calls no `random` filter and no `lipsum`."""
    tree = _parse(template_source, kind)
    filters = {node.name for node in tree.find_all(nodes.Filter)}
    names = {node.name for node in tree.find_all(nodes.Name)}
    return (filters | names).isdisjoint(_UNREPEATABLE)


@dataclass(frozen=True, slots=True)
class CompiledParts:
    """A message's subject, HTML and text compiled once, to render for each recipient."""

    subject: Any
    html: Any
    text: Any | None  # None: the text is derived from each recipient's rendered HTML
    shows_links: bool = False  # whether a text part derived from the HTML shows link URLs


def compile_parts(
    subject: str, html: str, text: str | None, *, show_links: bool = False
) -> CompiledParts:
    """Raises `jinja2.TemplateError` for a part that does not compile. `show_links`: a text
    part derived from the HTML shows each link's URL after its words."""
    text_source = text if text is not None else text_template_from_html(html, show_links=show_links)
    return CompiledParts(
        subject=compile_template(subject, TemplateKind.SUBJECT),
        html=compile_template(html, TemplateKind.HTML),
        text=None if text_source is None else compile_template(text_source, TemplateKind.TEXT),
        shows_links=show_links,
    )


def render_parts(parts: CompiledParts, context: Mapping[str, Any]) -> tuple[str, str, str]:
    """Subject, HTML and text for one recipient, within one work budget; raises `RenderError`
    naming the part (`subject`, `content`, `text`)."""
    with work_budget():
        # A subject is one header line whatever the data holds.
        subject = _LINE_BREAKS.sub(
            " ", render_part(parts.subject, TemplateKind.SUBJECT, context)
        ).strip()
        html = render_part(parts.html, TemplateKind.HTML, context)
        if parts.text is None:
            text = text_of_html(html, show_links=parts.shows_links)
        else:
            text = render_part(parts.text, TemplateKind.TEXT, context).strip()
    return subject, html, text


def render_part(template: Any, kind: TemplateKind, context: Mapping[str, Any]) -> str:
    """One part of an email rendered within its size limit; raises `RenderError` naming the
    part."""
    limit = MAX_RENDERED_SUBJECT_CHARS if kind is TemplateKind.SUBJECT else MAX_RENDERED_PART_CHARS
    try:
        return render(template, context, max_chars=limit)
    except RenderError as error:
        raise type(error)(f"{kind.value}: {error}") from None


def check_renders(templates: Mapping[TemplateKind, Any], context: Mapping[str, Any]) -> None:
    """Renders each of an email's templates for `context` within one work budget, for its
    failures alone; raises `RenderError` naming the part."""
    with work_budget():
        for kind, template in templates.items():
            render_part(template, kind, context)


def check_work_without_data(source: str) -> None:
    """Raises `RenderWorkExceeded` for a template that, rendered with no data at all (every
    variable empty), works past its budget or calls itself without end: it would for any
    recipient whose data does not steer it elsewhere. Other failures are left to the data."""
    try:
        template = _TRIAL.from_string(bounded_tree(_TRIAL.parse(source)))
    except (TemplateError, RecursionError, SyntaxError):
        return  # what compiling it reports (`template_variables`)
    try:
        render(template, {}, max_chars=MAX_RENDERED_PART_CHARS)
    except RenderWorkExceeded:
        raise
    except RenderError:
        pass


def recipient_context(
    shared: Mapping[str, Any],
    own: str | None,
    *,
    email: str,
    request_id: int,
    unsubscribe_url: str | None,
) -> dict[str, Any]:
    """What a recipient's templates see: the message's shared data, the recipient's own (JSON,
    as stored) over it, and the built-ins over both. Without `unsubscribe_url` (a click's
    link, rendered again, never reads it) that built-in is left out."""
    context = {**shared, **(orjson.loads(own) if own else {})}
    context[EMAIL_VARIABLE] = email
    context[REQUEST_ID_VARIABLE] = request_id
    if unsubscribe_url is not None:
        context[UNSUBSCRIBE_URL_VARIABLE] = unsubscribe_url
    else:
        context.pop(UNSUBSCRIBE_URL_VARIABLE, None)
    return context


def text_of_html(html: str, *, show_links: bool = False) -> str:
    """The text part derived from an HTML part; `show_links`: with each link's URL after its
    words."""
    text: str = get_text(html, _TEXT_WITH_LINKS if show_links else None)
    return text.strip()
