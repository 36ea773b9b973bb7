"""The template kit: text derived once from an HTML template, rendering bounded in size and
work."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import TemplateError

from ses_sender.template_sandbox import MAX_RENDER_STEPS
from ses_sender.templating import (
    RenderError,
    RenderWorkExceeded,
    Substitution,
    TemplateKind,
    check_work_without_data,
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


BIG = "y" * 60_000
# Each would hold the event loop for seconds, or fill memory, without the work budget.
RUNAWAY = {
    "nested loops": "{% for i in range(99999) %}{% for j in range(2000) %}"
    "{% if j == -1 %}x{% endif %}{% endfor %}{% endfor %}",
    "loops over data": "{% for a in xs %}{% for b in xs %}{% for c in xs %}{% for d in xs %}"
    "{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
    "a macro calling itself twice": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}"
    "{% endif %}{% endmacro %}{{ f(40) }}",
    "a macro calling itself forever": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "a recursive loop": "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
    "a huge range": "{% for i in range(100000000) %}x{% endfor %}",
    "text multiplied": "{{ 'x' * 100000000 }}",
    "a list multiplied": "{{ ([1] * 1000) * 1000 }}",
    "a huge power": "{{ 9 ** 99999999 }}",
    "text doubled": "{% set a = big %}" + "{% set a = a ~ a %}" * 40 + "{{ a | length }}",
    "a list doubled": "{% set xs = [1] %}{% for i in range(40) %}{% set _ = xs.extend(xs) %}"
    "{% endfor %}",
    "a wide center": "{{ 'a' | center(1000000000) }}",
    "a replace into every gap": "{{ big | replace('', big) }}",
    "a join with a big separator": "{{ range(1000) | join(big) }}",
    "a wide % format": "{{ '%999999999d' % 1 }}",
    "a wide str.format": "{{ '{:>999999999}'.format(1) }}",
    "much lorem ipsum": "{{ lipsum(100000) }}",
    "lists summed": "{{ [[1] * 100] * 100 | sum(start=[]) }}",
    "a huge slice": "{{ [1] | slice(100000000) | list | length }}",
    "a heavy filter a few times": "{% set s = '<a>' * 40000 %}{% for i in range(6) %}"
    "{{ (s | striptags) | length }}{% endfor %}",
}
TAGS = "{% set s = '<a>' * 150000 %}"  # 450,000 characters: more than any call may read
# Each reads the whole of `s`: item by item (a character a step), or as text (8 characters a
# step); a filter or method not named here is charged alike.
HEAVY_READS = [
    "s | sort | length",
    "s | map('upper') | list | length",
    "s | unique | list | length",
    "s | max",
    "s | min",
    "s | striptags | length",
    "s | wordcount",
    "s | replace('a', 'b') | length",
    "s | join('') | length",
    "s | select | list | length",
    "s | reject('none') | list | length",
    "s | groupby('x') | length",
    "s | batch(2) | list | length",
    "s | slice(2) | list | length",
    "s | list | length",
    "s | title | length",
    "s | urlize | length",
    "s | wordwrap(3) | length",
    "s.split('a') | length",
    "s.count('a')",
    "s.find('b')",
    "'b' is in s",
    "s | reverse | length",
    "s | tojson | length",
    "(s | list) | sum(start=0)",
]
RUNAWAY_CONTEXT = {"xs": list(range(40)), "big": BIG}


@pytest.mark.parametrize("source", RUNAWAY.values(), ids=RUNAWAY.keys())
def test_a_runaway_template_fails_within_its_work_budget(source: str) -> None:
    template = compile_template(source, TemplateKind.HTML)

    with pytest.raises(RenderError) as failed:
        render(template, RUNAWAY_CONTEXT, max_chars=10 * 1024 * 1024)
    assert isinstance(failed.value, RenderWorkExceeded) or "number over" in str(failed.value)


@pytest.mark.parametrize("expression", HEAVY_READS)
def test_a_call_is_charged_for_what_it_reads_before_it_runs(expression: str) -> None:
    template = compile_template(TAGS + "{{ " + expression + " }}", TemplateKind.HTML)

    with pytest.raises(RenderWorkExceeded, match="template work over"):
        render(template, {}, max_chars=10 * 1024 * 1024)


def test_a_long_article_through_text_filters_renders_within_the_budget() -> None:
    article = "<p>" + "Some words of an article, <b>with</b> markup. " * 2_000 + "</p>"
    source = "{{ article | safe }}{{ article | striptags | wordcount }}{{ article | truncate(20) }}"

    html = render(
        compile_template(source, TemplateKind.HTML), {"article": article}, max_chars=10**7
    )

    assert html.startswith(article)


def test_a_newsletter_of_hundreds_of_items_renders_within_the_budget() -> None:
    source = (
        "{% macro item(p) %}<li>{{ p.name | e }}: {{ '%.2f' % p.price }}"
        "{% for tag in p.tags %} #{{ tag | upper }}{% endfor %}</li>{% endmacro %}"
        "<ul>{% for p in products | sort(attribute='price') %}{{ item(p) }}{% endfor %}</ul>"
        "{{ products | map(attribute='name') | join(', ') }}"
    )
    products = [
        {"name": f"Product {i}", "price": i * 1.5, "tags": ["new", "sale", "eco"]}
        for i in range(500)
    ]

    html = render(
        compile_template(source, TemplateKind.HTML), {"products": products}, max_chars=10**7
    )

    assert html.count("<li>") == 500
    assert "Product 499: 748.50 #NEW #SALE #ECO" in html


def test_one_email_spends_one_budget_across_its_parts() -> None:
    # A range's items are spent twice: made, then looped over.
    most = f"{{% for i in range({MAX_RENDER_STEPS * 3 // 10}) %}}{{% endfor %}}x"

    subject, html, _ = render_parts(compile_parts(most, "<p>y</p>", "y"), {})
    assert (subject, html) == ("x", "<p>y</p>")
    with pytest.raises(RenderWorkExceeded, match=r"^content: "):
        render_parts(compile_parts(most, most, "y"), {})


@pytest.mark.parametrize(
    "source",
    [
        "{{" + "(" * 500 + "1" + ")" * 500 + "}}",
        "Hello {% raw %}",
        "Hello {% raw -%}",
        "{% for a in [1] %}" * 21 + "{% endfor %}" * 21,
        "{% if 1 %}" * 99 + "{% endif %}" * 99,
        "{% for a in [1] %}" * 99 + "{% else %}{% endfor %}" * 99,
        "{% macro m() %}" * 99 + "{% endmacro %}" * 99,
        "{% call m() %}" * 99 + "{% endcall %}" * 99,
    ],
    ids=[
        "nested 500 deep",
        "unclosed raw",
        "unclosed raw, trimmed",
        "21 loops nested",
        "99 ifs nested",
        "99 for-elses nested",
        "99 macros nested",
        "99 calls nested",
    ],
)
def test_what_cannot_be_compiled_is_a_template_error(source: str) -> None:
    with pytest.raises(TemplateError):
        compile_template(source, TemplateKind.TEXT)
    check_work_without_data(source)  # left to compiling


def test_a_runaway_found_without_data_only_when_data_cannot_steer_it() -> None:
    with pytest.raises(RenderWorkExceeded):
        check_work_without_data("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}")
    with pytest.raises(RenderWorkExceeded):
        check_work_without_data(RUNAWAY["nested loops"])
    check_work_without_data("{% for p in products %}{{ p.name }}{% endfor %}{{ 1 / count }}")


SUBSTITUTIONS = [
    "Hello {{ name }}",
    "{{ name }}{{ name }}",
    "",
    "no tags at all & <b>bold</b>",
    "  {{- name -}}  , {{ other }}\n",
    '<p>{{ name }}</p>{# a note #}<a href="{{ other }}">x</a>\n',
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


def jinja_render(template: Substitution, context: dict[str, object], limit: int) -> str:
    return render(template.template, context, max_chars=limit)


@pytest.mark.parametrize("kind", list(TemplateKind), ids=lambda kind: kind.value)
@pytest.mark.parametrize("source", SUBSTITUTIONS)
@settings(max_examples=40, deadline=None)
@given(name=JSON_VALUES, other=JSON_VALUES)
def test_a_template_of_values_between_text_renders_as_jinja_renders_it(
    kind: TemplateKind, source: str, name: object, other: object
) -> None:
    template = compile_template(source, kind)
    context = {"name": name, "other": other}

    assert isinstance(template, Substitution)
    assert render(template, context, max_chars=10**6) == jinja_render(template, context, 10**6)


@pytest.mark.parametrize(
    "source",
    [
        "{% if name %}x{% endif %}",
        "{{ name|upper }}",
        "{{ name.first }}",
        "{{ name ~ other }}",
        "{{ 'text' }}",
        "{{ ses_sender_link(0, name) }}",
        "{% set name = 1 %}{{ name }}",
        "Hi {{ self }}",
    ],
)
def test_anything_more_than_values_between_text_is_left_to_jinja(source: str) -> None:
    assert not isinstance(compile_template(source, TemplateKind.HTML), Substitution)


@pytest.mark.parametrize(
    ("context", "error"),
    [
        ({}, "'name' is undefined"),  # the data lacks it
        ({"name": 10**5000}, "template error"),  # too many digits to write
    ],
    ids=["missing", "unwritable"],
)
def test_what_a_substitution_cannot_render_fails_as_jinja_fails(
    context: dict[str, object], error: str
) -> None:
    template = compile_template("Hi {{ name }}", TemplateKind.TEXT)

    with pytest.raises(RenderError, match=error) as failure:
        render(template, context, max_chars=1000)
    with pytest.raises(RenderError) as jinja_failure:
        jinja_render(template, context, 1000)
    assert str(failure.value) == str(jinja_failure.value)


def test_a_name_only_the_environment_knows_renders_as_jinja_renders_it() -> None:
    template = compile_template("{{ range }}", TemplateKind.HTML)

    assert isinstance(template, Substitution)
    assert render(template, {}, max_chars=1000) == jinja_render(template, {}, 1000)
    assert "range" in render(template, {}, max_chars=1000)


def test_a_substitution_longer_than_the_limit_is_refused() -> None:
    template = compile_template("{{ name }}{{ name }}", TemplateKind.TEXT)

    assert render(template, {"name": "x" * 50}, max_chars=100) == "x" * 100
    with pytest.raises(RenderError, match="over 100 characters"):
        render(template, {"name": "x" * 51}, max_chars=100)
