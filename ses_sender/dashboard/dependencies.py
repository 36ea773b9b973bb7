"""What the dashboard's endpoints take: its sessions, the reader's language, the signed-in
session (or a redirect to sign in), and a form whose CSRF token was checked."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request

from ses_sender.dashboard.messages import LANGUAGES
from ses_sender.dashboard.service import Account
from ses_sender.dashboard.sessions import (
    SESSION_COOKIE,
    DashboardSessions,
    SignedIn,
    tokens_match,
)
from ses_sender.errors import Unauthorized
from ses_sender.web.body import read_body
from ses_sender.web.language import preferred_language
from ses_sender.web.provided import Provided

SESSIONS = Provided[DashboardSessions]("dashboard sessions")
ACCOUNT = Provided[Account]("account settings for the dashboard")

SessionsDep = Annotated[DashboardSessions, Depends(SESSIONS)]
AccountDep = Annotated[Account, Depends(ACCOUNT)]

# A dashboard form is a few short fields.
MAX_FORM_BYTES = 16 * 1024


class SignInRequired(Exception):
    """A page asked for without a valid session: answered with the sign-in page's address."""

    def __init__(self, wanted: str) -> None:
        super().__init__(wanted)
        self.wanted = wanted


class CsrfRefused(Exception):
    """A form posted without this session's CSRF token: answered 403."""


def language_of(request: Request) -> str:
    return preferred_language(request.headers.get("accept-language"), LANGUAGES)


async def _language(request: Request) -> str:
    return language_of(request)


LanguageDep = Annotated[str, Depends(_language)]


async def _signed_in(request: Request, sessions: SessionsDep) -> SignedIn:
    found = sessions.session(request.cookies.get(SESSION_COOKIE))
    if found is None:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(wanted)
    return found


async def _signed_in_for_data(request: Request, sessions: SessionsDep) -> SignedIn:
    found = sessions.session(request.cookies.get(SESSION_COOKIE))
    if found is None:
        raise Unauthorized("Unauthorized: sign in to the dashboard")
    return found


SignedInDep = Annotated[SignedIn, Depends(_signed_in)]
# For the pages' own JSON: a 401, not a redirect.
SignedInForDataDep = Annotated[SignedIn, Depends(_signed_in_for_data)]


async def _form(request: Request) -> dict[str, str]:
    """An url-encoded form's fields (the first value of each); other bodies have none."""
    body = await read_body(request, MAX_FORM_BYTES)
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        return {}
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


FormDep = Annotated[dict[str, str], Depends(_form)]


async def _checked_form(form: FormDep, signed_in: SignedInDep) -> dict[str, str]:
    if not tokens_match(signed_in.csrf_token, form.get("csrf")):
        raise CsrfRefused
    return form


CheckedFormDep = Annotated[dict[str, str], Depends(_checked_form)]
