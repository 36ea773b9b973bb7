"""Which links of an email are tracked, what the rewritten HTML looks like, and where each
link leads: parser cases."""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser

from ses_sender.tracking.links import ClickLinks, cut, fingerprint, track_links
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
    mine = links.recipient_links(tracked.links, request_id=9, content_id=4)

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

    jane = links.recipient_links(tracked.links, request_id=1, content_id=4)(0)
    john = links.recipient_links(tracked.links, request_id=2, content_id=4)(0)

    assert jane.startswith("https://mail.example.com/v1/c/")
    assert john.startswith("https://mail.example.com/v1/c/")
    assert jane != john
    assert "a.example" not in jane  # the target is not in the link


def test_the_honeypot_link_is_hidden() -> None:
    links = ClickLinks("https://mail.example.com", TrackingTokens("s" * 32))

    [anchor] = LexborHTMLParser(links.honeypot(request_id=1, content_id=2)).css("a")

    assert (anchor.attrs["href"] or "").startswith("https://mail.example.com/v1/c/")
    assert anchor.attrs["style"] == "display:none"
    assert anchor.attrs["aria-hidden"] == "true"
    assert anchor.attrs["tabindex"] == "-1"
    assert anchor.text() == ""
