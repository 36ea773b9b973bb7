"""Message templates: Jinja2 in its sandbox, checked once when a message arrives, compiled once
per content and rendered per recipient within a size bound.

A template sees only its context (the message's and the recipient's data, and the built-ins):
the sandbox refuses attribute access to anything unsafe, and `StrictUndefined` turns a missing
variable into an error instead of an empty string.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inscriptis import get_text
from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.nodes import Template as TemplateNode
from jinja2.sandbox import SandboxedEnvironment

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


_PLAIN = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)
_HTML = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True, keep_trailing_newline=True)
_LINE_BREAKS = re.compile(r"[\r\n]+")
_JINJA_TOKEN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
# Private-use characters: they survive HTML-to-text and appear in no one's template.
_PLACEHOLDER = "\ue000{}\ue001"
_PLACEHOLDER_PATTERN = re.compile("\ue000(\\d+)\ue001")


def _environment(kind: TemplateKind) -> SandboxedEnvironment:
    return _HTML if kind is TemplateKind.HTML else _PLAIN


def compile_template(source: str, kind: TemplateKind) -> Any:
    """The compiled template; raises `jinja2.TemplateError` for a syntax error."""
    return _environment(kind).from_string(source)


def template_variables(source: str, kind: TemplateKind) -> frozenset[str]:
    """The variables `source` reads from its context, by static analysis; raises
    `jinja2.TemplateError` for a syntax error."""
    environment = _environment(kind)
    tree: TemplateNode = environment.parse(source)
    # Compiling too catches what parsing alone lets through (an unknown filter, say).
    environment.from_string(tree)
    return frozenset(meta.find_undeclared_variables(tree))


def describe_template_error(error: TemplateError) -> str:
    line = getattr(error, "lineno", None)
    where = f" (line {line})" if line else ""
    return f"template error{where}: {error.message or type(error).__name__}"


def render(template: Any, context: Mapping[str, Any], *, max_chars: int) -> str:
    """`template` rendered with `context`, refused once its output passes `max_chars`: a loop
    cannot make an email of unbounded size."""
    parts: list[str] = []
    size = 0
    try:
        for part in template.generate(context):
            size += len(part)
            if size > max_chars:
                raise RenderError(f"rendered output over {max_chars} characters")
            parts.append(part)
    except TemplateError as error:
        raise RenderError(describe_template_error(error)) from error
    return "".join(parts)


def text_template_from_html(html_source: str) -> str | None:
    """The plain-text form of an HTML template, as a text template: its text derived from the
    HTML once, with the template's tags kept where they stood, instead of the HTML rendered and
    converted for every recipient. None when that cannot be done faithfully (a block tag dropped
    with the markup around it, or the result not a valid template)."""
    tokens: list[str] = []

    def hold(match: re.Match[str]) -> str:
        tokens.append(match.group(0))
        return _PLACEHOLDER.format(len(tokens) - 1)

    protected = _JINJA_TOKEN.sub(hold, html_source)
    text = get_text(protected).strip()
    kept = [int(index) for index in _PLACEHOLDER_PATTERN.findall(text)]
    # An expression may go with its markup (a link's href), as it would from the rendered HTML;
    # a block tag may not: its block would lose an end.
    statements = [i for i, token in enumerate(tokens) if token.startswith("{%")]
    if kept != sorted(set(kept)) or not set(statements) <= set(kept):
        return None
    source = _PLACEHOLDER_PATTERN.sub(lambda match: tokens[int(match.group(1))], text)
    try:
        compile_template(source, TemplateKind.TEXT)
    except TemplateError:
        return None
    return source


@dataclass(frozen=True, slots=True)
class CompiledParts:
    """A message's subject, HTML and text compiled once, to render for each recipient."""

    subject: Any
    html: Any
    text: Any | None  # None: the text is derived from each recipient's rendered HTML


def compile_parts(subject: str, html: str, text: str | None) -> CompiledParts:
    """Raises `jinja2.TemplateError` for a part that does not compile."""
    text_source = text if text is not None else text_template_from_html(html)
    return CompiledParts(
        subject=compile_template(subject, TemplateKind.SUBJECT),
        html=compile_template(html, TemplateKind.HTML),
        text=None if text_source is None else compile_template(text_source, TemplateKind.TEXT),
    )


def render_parts(parts: CompiledParts, context: Mapping[str, Any]) -> tuple[str, str, str]:
    """Subject, HTML and text for one recipient; raises `RenderError`."""
    # A subject is one header line whatever the data holds.
    subject = _LINE_BREAKS.sub(
        " ", render(parts.subject, context, max_chars=MAX_RENDERED_SUBJECT_CHARS)
    ).strip()
    html = render(parts.html, context, max_chars=MAX_RENDERED_PART_CHARS)
    if parts.text is None:
        text = text_of_html(html)
    else:
        text = render(parts.text, context, max_chars=MAX_RENDERED_PART_CHARS).strip()
    return subject, html, text


def builtins(email: str, unsubscribe_url: str, request_id: int) -> dict[str, Any]:
    return {
        EMAIL_VARIABLE: email,
        UNSUBSCRIBE_URL_VARIABLE: unsubscribe_url,
        REQUEST_ID_VARIABLE: request_id,
    }


def text_of_html(html: str) -> str:
    """The text part derived from an HTML part."""
    text: str = get_text(html)
    return text.strip()
