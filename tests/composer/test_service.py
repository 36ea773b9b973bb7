"""The email a recipient gets: tracked links in both parts, the honeypot and the pixel, and
what is left alone."""

from __future__ import annotations

import re

from ses_sender.composer.service import EmailComposer
from ses_sender.delivery.emails import ContentParts, QueuedEmail
from ses_sender.tracking.links import HONEYPOT_POSITION, fingerprint
from ses_sender.tracking.tokens import TrackingTokens
from tests.support.tracking import tracked_links

BASE = "https://mail.example.com"
TOKENS = TrackingTokens("s" * 32)
HTML = (
    '<html><body><h1>Spring</h1><p>See <a href="https://shop.example/sale">the sale</a> or'
    ' <a href="mailto:help@example.com">write</a>. <a href="#top">Top</a>'
    f' <a href="{BASE}/v1/unsubscribe/by-hand">Unsubscribe</a></p></body></html>'
)


def compose(
    request_id: int, content: ContentParts, *, track_clicks: bool = True
) -> tuple[str, str]:
    composer = EmailComposer(
        sender="s@example.com", public_base_url=BASE, tokens=TOKENS, track_clicks=track_clicks
    )
    queued = QueuedEmail(request_id, "t", "a@example.com", "a@example.com", 5, 1, lease_token=1)
    email = composer.compose(queued, content)
    return email.html, email.text


def test_links_are_tracked_in_the_html_and_the_text_part_with_the_same_token() -> None:
    html, text = compose(1, ContentParts("S", HTML))

    sale, honeypot = tracked_links(html)
    assert text == (
        f"Spring\n\nSee [the sale]({sale}) or [write](mailto:help@example.com). [Top](#top)"
        f" [Unsubscribe]({BASE}/v1/unsubscribe/by-hand)"
    )
    click = TOKENS.click(sale.rsplit("/", 1)[1])
    assert click is not None
    assert (click.request_id, click.content_id, click.position) == (1, 5, 0)
    trap = TOKENS.click(honeypot.rsplit("/", 1)[1])
    assert trap is not None
    assert trap.position == HONEYPOT_POSITION
    assert honeypot not in text
    for untouched in ('href="mailto:help@example.com"', 'href="#top"', "/v1/unsubscribe/by-hand"):
        assert untouched in html
    assert html.index(honeypot) < html.index("/v1/events/open?t=") < html.index("</body>")


def test_each_recipient_gets_their_own_tokens_in_the_same_html() -> None:
    content = ContentParts("S", HTML)

    jane, _ = compose(1, content)
    john, _ = compose(2, content)

    [jane_sale, _], [john_sale, _] = tracked_links(jane), tracked_links(john)
    assert jane_sale != john_sale
    assert jane.split(jane_sale)[0] == john.split(john_sale)[0]


def test_a_message_or_the_default_can_turn_tracking_off() -> None:
    for content, default in [
        (ContentParts("S", HTML, track_clicks=False), True),
        (ContentParts("S", HTML), False),
    ]:
        html, text = compose(1, content, track_clicks=default)
        assert tracked_links(html) == []
        assert html.startswith(HTML.removesuffix("</body></html>"))
        assert "https://" not in text


def test_a_message_can_turn_tracking_on_against_the_default() -> None:
    html, _ = compose(1, ContentParts("S", HTML, track_clicks=True), track_clicks=False)

    assert len(tracked_links(html)) == 2


TEMPLATE = (
    '<html><body><p>Hi {{ name }}. <a href="https://shop.example/sale">Sale</a>'
    ' <a href="https://shop.example/orders/{{ order }}">Your order</a>'
    ' <a href="{{ link }}">Yours</a></p></body></html>'
)


def personal(request_id: int, data: str, *, text: str | None = None) -> tuple[str, str]:
    composer = EmailComposer(
        sender="s@example.com", public_base_url=BASE, tokens=TOKENS, track_clicks=True
    )
    content = ContentParts("S", TEMPLATE, text=text, templated=True, data='{"name": "you"}')
    queued = QueuedEmail(
        request_id, "t", "a@example.com", "a@example.com", 5, 1, lease_token=1, data=data
    )
    email = composer.compose(queued, content)
    return email.html, email.text


def test_a_templated_content_gives_each_recipient_links_to_their_own_urls() -> None:
    jane_html, jane_text = personal(1, '{"order": 7, "link": "https://jane.example/"}')
    john_html, _ = personal(2, '{"order": 8, "link": "https://john.example/?a=1&b=2"}')

    jane_sale, jane_order, jane_own, jane_honeypot = tracked_links(jane_html)
    john_sale, john_order, john_own, _ = tracked_links(john_html)
    assert jane_text == (
        f"Hi you. [Sale]({jane_sale}) [Your order]({jane_order}) [Yours]({jane_own})"
    )
    clicks = [TOKENS.click(link.rsplit("/", 1)[1]) for link in (jane_order, jane_own, john_own)]
    assert [(c.request_id, c.position, c.fingerprint) for c in clicks if c is not None] == [
        (1, 1, fingerprint("https://shop.example/orders/7")),
        (1, 2, fingerprint("https://jane.example/")),
        (2, 2, fingerprint("https://john.example/?a=1&b=2")),
    ]
    assert jane_sale != john_sale
    assert jane_order != john_order
    honeypot = TOKENS.click(jane_honeypot.rsplit("/", 1)[1])
    assert honeypot is not None
    assert honeypot.position == HONEYPOT_POSITION


def test_a_link_rendered_to_a_url_we_do_not_track_goes_out_as_rendered() -> None:
    html, text = personal(1, '{"order": 7, "link": "mailto:a@example.com?subject=a&body=\\""}')

    assert len(tracked_links(html)) == 3  # the sale, the order, the honeypot
    assert '<a href="mailto:a@example.com?subject=a&amp;body=&#34;">Yours</a>' in html
    assert '[Yours](mailto:a@example.com?subject=a&body=")' in text


def test_a_given_text_template_has_its_urls_tracked() -> None:
    html, text = personal(
        1,
        '{"order": 7, "link": "https://x.example/"}',
        text="Order: https://shop.example/o/{{ order }}",
    )

    [link] = re.findall(rf"{BASE}/v1/c/[\w-]+", text)
    assert text == f"Order: {link}"
    click = TOKENS.click(link.rsplit("/", 1)[1])
    assert click is not None
    assert (click.position, click.fingerprint) == (3, fingerprint("https://shop.example/o/7"))
    assert link not in html


ANY_TOKEN = re.compile(rf"(?<={BASE}/v1/)(c/|events/open\?t=|unsubscribe/)([\w-]+)")
NEWSLETTER = (
    "<html><body><h1>Hi {{ name }}</h1>"
    '<p><a href="https://shop.example/sale">Sale</a>'
    ' <a href="https://shop.example/orders/{{ order }}">Your order</a></p>'
    '{% for item in items %}<a href="https://shop.example/i/{{ item }}">{{ item }}</a>'
    '<a href="https://shop.example/same">Same</a>{% endfor %}'
    '{% if vip %}<a href="https://shop.example/vip">VIP</a>{% endif %}'
    '<a href="{{ unsubscribe_url }}">Leave</a></body></html>'
)
NEWSLETTER_TEXT = "Hi {{ name }}: https://shop.example/sale https://shop.example/orders/{{ order }}"


def decoded(part: str) -> tuple[str, set[str]]:
    """`part` with each of our tokens written as what it names, and the tokens as written."""
    written: set[str] = set()

    def name(match: re.Match[str]) -> str:
        kind, token = match.groups()
        written.add(token)
        if kind == "c/":
            click = TOKENS.click(token)
            assert click is not None
            named = f"{click.request_id} {click.content_id} {click.position} {click.fingerprint}"
            return f"c/<click {named}>"
        if kind.startswith("events"):
            return f"{kind}<open {TOKENS.open_request_id(token)}>"
        return f"{kind}<unsubscribe {TOKENS.unsubscribe_request_id(token)}>"

    return ANY_TOKEN.sub(name, part), written


def test_a_templated_tracked_email_is_its_render_with_tokens_naming_request_and_position() -> None:
    composer = EmailComposer(
        sender="s@example.com", public_base_url=BASE, tokens=TOKENS, track_clicks=True
    )
    content = ContentParts(
        "For {{ name }}", NEWSLETTER, text=NEWSLETTER_TEXT, templated=True, data='{"vip": false}'
    )
    tokens_seen: list[set[str]] = []
    for request_id in (21, 22, 23):
        vip_data = ', "vip": true' if request_id == 22 else ""  # over the message's false
        data = f'{{"name": "N{request_id}", "order": {request_id}, "items": [1, 2]{vip_data}}}'
        queued = QueuedEmail(
            request_id, "t", "a@example.com", "a@example.com", 5, 1, lease_token=1, data=data
        )
        email = composer.compose(queued, content)
        html, in_html = decoded(email.html)
        text, in_text = decoded(email.text)
        [(_, unsubscribe)] = [header for header in email.headers if header[0] == "List-Unsubscribe"]
        _, in_header = decoded(unsubscribe)
        # One token per link, the same wherever the email shows it.
        tokens_seen.append(in_html | in_text | in_header)
        assert len(tokens_seen[-1]) == 8 + (request_id == 22)
        r = request_id
        same = f"<click {r} 5 2 {fingerprint('https://shop.example/same')}>"
        vip = (
            f'<a href="{BASE}/v1/c/<click {r} 5 3 {fingerprint("https://shop.example/vip")}>">VIP</a>'
            if r == 22
            else ""
        )
        sale = f"{BASE}/v1/c/<click {r} 5 0 {fingerprint('https://shop.example/sale')}>"
        order = f"{BASE}/v1/c/<click {r} 5 1 {fingerprint(f'https://shop.example/orders/{r}')}>"
        # A link that reads the loop's variable cannot be rendered again on a click: as written.
        items = "".join(
            f'<a href="https://shop.example/i/{i}">{i}</a><a href="{BASE}/v1/c/{same}">Same</a>'
            for i in (1, 2)
        )
        assert email.subject == f"For N{r}"
        assert html == (
            f'<html><body><h1>Hi N{r}</h1><p><a href="{sale}">Sale</a>'
            f' <a href="{order}">Your order</a></p>{items}{vip}'
            f'<a href="{BASE}/v1/unsubscribe/<unsubscribe {r}>">Leave</a>'
            f'<a href="{BASE}/v1/c/<click {r} 5 {HONEYPOT_POSITION} 0>" style="display:none"'
            ' aria-hidden="true" tabindex="-1"></a>'
            f'<img src="{BASE}/v1/events/open?t=<open {r}>" width="1" height="1" alt="">'
            "</body></html>"
        )
        # The text part's links are numbered after the HTML's.
        assert text == (
            f"Hi N{r}: {BASE}/v1/c/<click {r} 5 4 {fingerprint('https://shop.example/sale')}>"
            f" {BASE}/v1/c/<click {r} 5 5 {fingerprint(f'https://shop.example/orders/{r}')}>"
        )
    # No recipient's token is another's.
    assert len(set().union(*tokens_seen)) == sum(len(tokens) for tokens in tokens_seen)
