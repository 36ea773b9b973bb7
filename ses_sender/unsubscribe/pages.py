"""The pages a person sees behind an unsubscribe link, in English or Korean.

They name the address the link acts on, masked (the link may have been forwarded), and the
sender whose mail it stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr

import jinja2

from ses_sender.web.language import preferred_language

LANGUAGES = ("en", "ko")

_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "confirm.title": "Unsubscribe",
        "confirm.question": "Stop all email from {sender} to {address}?",
        "confirm.button": "Unsubscribe",
        "done.title": "You are unsubscribed",
        "done.body": "{sender} will not email {address} again.",
        "not_found.title": "Link not valid",
        "not_found.body": (
            "This unsubscribe link is not valid. If you copied it, check that it is whole."
        ),
        "not_one_click.title": "Not unsubscribed",
        "not_one_click.body": (
            "Nothing was changed: the request did not say List-Unsubscribe=One-Click. "
            "Open the link and use the button."
        ),
    },
    "ko": {
        "confirm.title": "수신 거부",
        "confirm.question": (
            "{sender}에서 {address}(으)로 보내는 모든 이메일을 받지 않으시겠습니까?"
        ),
        "confirm.button": "수신 거부",
        "done.title": "수신 거부되었습니다",
        "done.body": "{sender}은(는) 앞으로 {address}(으)로 이메일을 보내지 않습니다.",
        "not_found.title": "유효하지 않은 링크",
        "not_found.body": (
            "이 수신 거부 링크는 유효하지 않습니다. 링크를 복사하셨다면 전체가 복사되었는지 "
            "확인해 주세요."
        ),
        "not_one_click.title": "수신 거부되지 않았습니다",
        "not_one_click.body": (
            "아무것도 변경되지 않았습니다. 요청에 List-Unsubscribe=One-Click이 없습니다. "
            "링크를 열고 버튼을 눌러 주세요."
        ),
    },
}

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("ses_sender.unsubscribe", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True, slots=True)
class PageText:
    language: str
    title: str
    body: str
    button: str | None = None  # the one-click form's button, on the confirmation page


def mask_address(address: str) -> str:
    """`jane@example.com` as `j***@example.com`: enough to recognise, not to harvest."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def sender_name(sender: str) -> str:
    """`Acme News <news@acme.example>` as `Acme News (news@acme.example)`."""
    name, address = parseaddr(sender)
    if name and address:
        return f"{name} ({address})"
    return address or sender


def language_of(accept_language: str | None) -> str:
    return preferred_language(accept_language, LANGUAGES)


def page_text(
    language: str, page: str, *, sender: str = "", address: str = "", button: bool = False
) -> PageText:
    messages = _MESSAGES[language]
    body_key = "confirm.question" if page == "confirm" else f"{page}.body"
    return PageText(
        language=language,
        title=messages[f"{page}.title"],
        body=messages[body_key].format(sender=sender_name(sender), address=address),
        button=messages["confirm.button"] if button else None,
    )


def render(text: PageText, *, form_field: str, form_value: str) -> str:
    return _TEMPLATES.get_template("page.html").render(
        text=text, form_field=form_field, form_value=form_value
    )
