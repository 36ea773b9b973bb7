"""Which links of an email are tracked, what the rewritten HTML looks like, and where each
link leads: parser cases."""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser

from ses_sender.tracking.links import (
    LINK_FUNCTION,
    ClickLinks,
    ContentLinks,
    LinkTemplate,
    Target,
    cut,
    fingerprint,
    track_content,
    track_links,
)
from ses_sender.tracking.tokens import TrackingTokens

OURS = "https://mail.example.com/v1/"


def urls(html: str) -> list[str]:
    return [target.url for target in track_links(html, untracked_prefix=OURS).targets]


def locations(html: str) -> list[str]:
    return [target.location for target in track_links(html, untracked_prefix=OURS).targets]


def test_http_and_https_links_are_tracked_in_document_order() -> None:
    html = (
        '<table><tr><td><a href="https://a.example/x"><b>A</b></a></td></tr></table>'
        '<p><span><a href="http://b.example/">B</a></span></p>'
        '<map><area href="https://c.example/map" alt="C"></map>'
    )

    assert urls(html) == ["https://a.example/x", "http://b.example/", "https://c.example/map"]


def test_mailto_tel_anchors_relative_and_our_own_links_are_left_alone() -> None:
    html = (
        '<a href="mailto:help@example.com">mail</a><a href="tel:+15551234">call</a>'
        '<a href="#top">top</a><a href="/relative">rel</a><a href="javascript:alert(1)">js</a>'
        '<a href="https://mail.example.com/v1/unsubscribe/abc">unsubscribe</a><a>no href</a>'
    )

    tracked = track_links(html, untracked_prefix=OURS)

    assert tracked.targets == ()
    for untouched in (
        'href="mailto:help@example.com"',
        'href="tel:+15551234"',
        'href="#top"',
        'href="/relative"',
        'href="https://mail.example.com/v1/unsubscribe/abc"',
    ):
        assert untouched in tracked.html


def test_attribute_entities_are_decoded_for_the_target_and_kept_valid_in_the_html() -> None:
    html = '<a title="Tom &amp; &quot;Jerry&quot;" href="https://a.example/?a=1&amp;b=2&#x26;c=3">x</a>'

    tracked = track_links(html, untracked_prefix=OURS)

    assert [t.url for t in tracked.targets] == ["https://a.example/?a=1&b=2&c=3"]
    assert 'title="Tom &amp; &quot;Jerry&quot;"' in tracked.html
    [anchor] = LexborHTMLParser(tracked.html).css("a")
    assert anchor.attrs["title"] == 'Tom & "Jerry"'


def test_non_ascii_urls_survive_and_redirect_as_ascii() -> None:
    html = '<a href="https://bücher.example/straße?q=ü#größe">buch</a> <p>한국어 본문</p>'

    tracked = track_links(html, untracked_prefix=OURS)

    [target] = tracked.targets
    assert target.url == "https://bücher.example/straße?q=ü#größe"
    assert target.location == ("https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC#gr%C3%B6%C3%9Fe")
    assert "한국어 본문" in tracked.html


def test_whitespace_and_ports_and_ipv6_hosts() -> None:
    assert locations('<a href="  https://a.example:8443/p q\n">x</a>') == [
        "https://a.example:8443/p%20q"
    ]
    assert locations('<a href="HTTP://[2001:db8::1]/x">x</a>') == ["http://[2001:db8::1]/x"]
    assert locations('<a href="https://a.example:notaport/">x</a>') == []
    assert locations('<a href="https:no-slashes.example">x</a>') == []


def test_notrack_links_are_left_alone_and_the_attribute_removed() -> None:
    html = (
        '<a href="https://a.example/" data-ses-sender-notrack>a</a>'
        '<a href="https://b.example/">b</a>'
        '<p data-ses-sender-notrack="">p</p>'
    )

    tracked = track_links(html, untracked_prefix=OURS)

    assert [t.url for t in tracked.targets] == ["https://b.example/"]
    assert 'href="https://a.example/"' in tracked.html
    assert "data-ses-sender-notrack" not in tracked.html


def test_the_rewritten_html_parses_to_the_same_document_with_our_links() -> None:
    html = (
        "<!DOCTYPE html><html><head><title>T</title></head><body>"
        '<div class="x"><p>One <a href="https://a.example/1" class="btn">1</a></p>'
        '<p>Two <a href="https://a.example/2">2</a><br></p></div></body></html>'
    )
    links = ClickLinks("https://mail.example.com", TrackingTokens("s" * 32))
    tracked = links.track(html, None, templated=False)
    mine = links.recipient_links(ContentLinks.of(tracked.links), request_id=9, content_id=4)

    filled = cut(tracked.html, tracked.slot).fill(mine)

    assert filled.startswith("<!DOCTYPE html><html><head><title>T</title></head><body>")
    document = LexborHTMLParser(filled)
    assert [a.attrs["href"] for a in document.css("a")] == [mine(0), mine(1)]
    assert [a.attrs.get("class") for a in document.css("a")] == ["btn", None]
    assert [p.text() for p in document.css("p")] == ["One 1", "Two 2"]


def test_the_same_content_gives_the_same_targets_every_time() -> None:
    html = '<a href="https://a.example/1">1</a><a href="https://a.example/1">again</a>'

    first = track_links(html, untracked_prefix=OURS)
    second = track_links(html, untracked_prefix=OURS)

    assert first.targets == second.targets
    assert first.slot != second.slot  # what marks the links is new each time
    assert [t.fingerprint for t in first.targets] == [fingerprint("https://a.example/1")] * 2


def test_each_recipients_links_differ_only_in_their_token() -> None:
    links = ClickLinks("https://mail.example.com", TrackingTokens("s" * 32))
    tracked = links.track('<a href="https://a.example/">a</a>', None, templated=False)

    jane = links.recipient_links(ContentLinks.of(tracked.links), request_id=1, content_id=4)(0)
    john = links.recipient_links(ContentLinks.of(tracked.links), request_id=2, content_id=4)(0)

    assert jane.startswith("https://mail.example.com/v1/c/")
    assert john.startswith("https://mail.example.com/v1/c/")
    assert jane != john
    assert "a.example" not in jane  # the target is not in the link


def test_the_honeypot_link_is_hidden() -> None:
    links = ClickLinks("https://mail.example.com", TrackingTokens("s" * 32))

    [anchor] = LexborHTMLParser(
        links.recipient_links(ContentLinks.of(()), request_id=1, content_id=2).honeypot()
    ).css("a")

    assert (anchor.attrs["href"] or "").startswith("https://mail.example.com/v1/c/")
    assert anchor.attrs["style"] == "display:none"
    assert anchor.attrs["aria-hidden"] == "true"
    assert anchor.attrs["tabindex"] == "-1"
    assert anchor.text() == ""


# -- templates and text parts -----------------------------------------------------------------


def test_a_templates_links_are_slotted_and_the_rest_stays_exactly_as_written() -> None:
    source = (
        "<table>{% for row in rows if row.price < 10 %}<tr><td>{{ row.name }}</td>"
        '<td><a href="https://a.example/buy">buy</a></td></tr>{% endfor %}</table>'
        '{# <a href="https://hidden.example/"> #}<p>{{ "<a href=x>" }} &nbsp;&amp;'
        "<a href='https://b.example/?a=1&amp;b=2' title=\"{{ title }}\">b</a></p>"
    )

    tracked = track_content(source, None, templated=True, untracked_prefix=OURS)

    assert tracked.html == source.replace(
        'href="https://a.example/buy"', f'href="{tracked.slot}00000"'
    ).replace(
        "href='https://b.example/?a=1&amp;b=2' title=\"{{ title }}\"",
        f'href="{tracked.slot}00001" title="{{{{ title }}}}"',
    )
    assert [link.url for link in tracked.links if isinstance(link, Target)] == [
        "https://a.example/buy",
        "https://b.example/?a=1&b=2",
    ]


def test_a_link_whose_url_holds_tags_is_rendered_for_each_recipient() -> None:
    source = '<a href="https://a.example/o/{{ order }}?l={{ lang|upper }}&amp;x=1">o</a>'

    tracked = track_content(source, None, templated=True, untracked_prefix=OURS)

    [link] = tracked.links
    assert isinstance(link, LinkTemplate)
    assert link.source == "https://a.example/o/{{ order }}?l={{ lang|upper }}&x=1"
    url, target = link.render({"order": "ß 1", "lang": "de"}, OURS)
    assert url == "https://a.example/o/ß 1?l=DE&x=1"
    assert target is not None
    assert target.location == "https://a.example/o/%C3%9F%201?l=DE&x=1"
    assert f"{LINK_FUNCTION}(0, " in tracked.html


def test_links_that_cannot_be_rendered_again_alike_are_left_as_written() -> None:
    source = (
        '{% for item in items %}<a href="https://a.example/{{ item }}">i</a>{% endfor %}'
        '{% set page = "p" %}<a href="https://a.example/{{ page }}">p</a>'
        '<a href="https://a.example/{{ [1, 2]|random }}">r</a>'
        '<a href="{{ unsubscribe_url }}">u</a>'
        '<a href="https://a.example/?u={{ unsubscribe_url }}">u</a>'
        '<a href="{% if x %}https://a.example/">a block around the link</a>{% endif %}'
    )

    tracked = track_content(source, None, templated=True, untracked_prefix=OURS)

    assert tracked.links == ()
    assert tracked.html == source


def test_links_in_a_raw_block_are_text_to_jinja() -> None:
    source = '{% raw %}<a href="https://a.example/{{ x }}">x</a>{% endraw %}'

    tracked = track_content(source, None, templated=True, untracked_prefix=OURS)

    assert [link.url for link in tracked.links if isinstance(link, Target)] == [
        "https://a.example/{{ x }}"
    ]
    assert tracked.html == f'{{% raw %}}<a href="{tracked.slot}00000">x</a>{{% endraw %}}'


def test_urls_of_a_text_part_are_tracked_after_the_htmls_links() -> None:
    html = '<a href="https://a.example/">a</a>'
    text = (
        "{{ name }}: see https://a.example/, (https://b.example/x_(y)) or"
        " https://c.example/{{ id }}. Not: mailto:a@example.com, ftp://f.example/, b.example, https://mail.example.com/v1/u/x"
    )

    tracked = track_content(html, text, templated=True, untracked_prefix=OURS)
    as_given = track_content(html, text, templated=False, untracked_prefix=OURS)

    slot = tracked.slot
    assert tracked.text == text.replace("https://a.example/,", f"{slot}00001,").replace(
        "https://b.example/x_(y)", f"{slot}00002"
    ).replace(
        "https://c.example/{{ id }}",
        "{% set ses_sender_url %}{% autoescape false %}https://c.example/{{ id }}"
        "{% endautoescape %}{% endset %}{{ ses_sender_link(3, ses_sender_url) }}",
    )
    assert [type(link).__name__ for link in tracked.links] == [
        "Target",
        "Target",
        "Target",
        "LinkTemplate",
    ]
    # Sent as given, a text part is no template: its braces are text, and end the URL.
    assert as_given.text == (
        text.replace("https://a.example/,", f"{as_given.slot}00001,")
        .replace("https://b.example/x_(y)", f"{as_given.slot}00002")
        .replace("https://c.example/{{", f"{as_given.slot}00003{{{{")
    )
    assert [link.url for link in as_given.links if isinstance(link, Target)] == [
        "https://a.example/",
        "https://a.example/",
        "https://b.example/x_(y)",
        "https://c.example/",
    ]
