"""The template kit: text derived once from an HTML template, bounded rendering."""

from __future__ import annotations

import pytest

from ses_sender.templating import (
    RenderError,
    TemplateKind,
    compile_parts,
    compile_template,
    render,
    render_parts,
    text_of_html,
    text_template_from_html,
)

CONTEXT = {"name": "Jane & Joe", "items": ["tea", "cake"], "url": "https://example.com/u/1"}


@pytest.mark.parametrize(
    "html",
    [
        "<h1>Hello {{ name }}</h1><p>Your order:</p>",
        '<p>Hi {{ name }}</p><a href="{{ url }}">Unsubscribe</a>',
        "<ul>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ul>",
        "<p>{# a note #}{% if name %}Dear {{ name }}{% else %}Hello{% endif %}</p>",
    ],
)
def test_text_derived_from_the_template_says_what_the_rendered_html_says(html: str) -> None:
    """The same words in the same order; a loop's blank lines may differ."""
    derived = text_template_from_html(html)

    assert derived is not None
    rendered_html = render(compile_template(html, TemplateKind.HTML), CONTEXT, max_chars=10_000)
    text = render(compile_template(derived, TemplateKind.TEXT), CONTEXT, max_chars=10_000)
    assert text.split() == text_of_html(rendered_html).split()


def test_a_block_tag_lost_with_its_markup_falls_back_to_each_rendered_html() -> None:
    html = '<p class="{% if name %}named{% endif %}">Hi {{ name }}</p>'

    assert text_template_from_html(html) is None
    _, rendered, text = render_parts(compile_parts("Hi", html, None), CONTEXT)
    assert text == "Hi Jane & Joe"
    assert rendered == '<p class="named">Hi Jane &amp; Joe</p>'


def test_rendering_stops_at_its_cap() -> None:
    template = compile_template(
        "{% for i in range(1000) %}xxxxxxxxxx{% endfor %}", TemplateKind.TEXT
    )

    assert len(render(template, {}, max_chars=10_000)) == 10_000
    with pytest.raises(RenderError, match="over 9999 characters"):
        render(template, {}, max_chars=9_999)


def test_a_missing_variable_or_unsafe_access_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="'nobody' is undefined"):
        render(compile_template("{{ nobody }}", TemplateKind.TEXT), {}, max_chars=100)
    with pytest.raises(RenderError, match="unsafe"):
        render(compile_template("{{ x.__class__ }}", TemplateKind.TEXT), {"x": 1}, max_chars=100)
