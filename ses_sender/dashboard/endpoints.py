"""The dashboard: pages for people, rendered here, signed in with an API key.

Every page needs a session (else it redirects to the sign-in page); every POST needs the
session's CSRF token (else 403). Actions answer with a redirect back to their page (POST,
redirect, GET), which says what was done.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import JSONResponse
from starlette.responses import RedirectResponse, Response

from ses_sender.dashboard import pages, service
from ses_sender.dashboard.dependencies import (
    AccountDep,
    CheckedFormDep,
    CsrfRefused,
    FormDep,
    LanguageDep,
    SessionsDep,
    SignedInDep,
    SignedInForDataDep,
    SignInRequired,
    language_of,
)
from ses_sender.dashboard.sessions import (
    COOKIE_PATH,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    SIGN_IN_COOKIE,
    SIGN_IN_MAX_AGE_S,
    SignedIn,
    new_form_token,
    tokens_match,
)
from ses_sender.delivery.dependencies import WakeupDep
from ses_sender.errors import NotFound
from ses_sender.web.dependencies import NowDep, SessionDep

router = APIRouter(prefix="/dashboard", include_in_schema=False)

HOME = "/dashboard"
SIGN_IN = "/dashboard/sign-in"
TOPIC_ACTIONS = ("pause", "resume", "cancel")


def _redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=303, headers=pages.SECURITY_HEADERS)


def _to_topic(topic_id: str, **query: str) -> str:
    return "/dashboard/topic?" + urlencode({"id": topic_id, **query})


def _safe_next(wanted: str | None) -> str:
    """Back to the page asked for, only if it is one of ours (never another site)."""
    if wanted and wanted.startswith(HOME):
        return wanted
    return HOME


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


# -- signing in and out --------------------------------------------------------------------


@router.get("/sign-in")
async def sign_in_page(
    request: Request, language: LanguageDep, next: str | None = None
) -> Response:
    return _sign_in_form(request, language, wanted=_safe_next(next), refused=False)


def _sign_in_form(request: Request, language: str, *, wanted: str, refused: bool) -> Response:
    token = new_form_token()
    response = pages.render(
        "sign_in.html",
        language=language,
        status_code=401 if refused else 200,
        csrf=token,
        wanted=wanted,
        refused=refused,
        signed_in=False,
    )
    _set_cookie(response, request, SIGN_IN_COOKIE, token, SIGN_IN_MAX_AGE_S)
    return response


@router.post("/sign-in")
async def sign_in(
    request: Request, form: FormDep, sessions: SessionsDep, language: LanguageDep
) -> Response:
    if not tokens_match(request.cookies.get(SIGN_IN_COOKIE), form.get("csrf")):
        raise CsrfRefused
    cookie = sessions.sign_in(form.get("key", ""))
    wanted = _safe_next(form.get("next"))
    if cookie is None:
        return _sign_in_form(request, language, wanted=wanted, refused=True)
    response = _redirect(wanted)
    _set_cookie(response, request, SESSION_COOKIE, cookie, SESSION_MAX_AGE_S)
    response.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/sign-out")
async def sign_out(form: CheckedFormDep) -> Response:
    response = _redirect(SIGN_IN)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


# -- overview ------------------------------------------------------------------------------


@router.get("")
async def overview_page(
    signed_in: SignedInDep,
    language: LanguageDep,
    session: SessionDep,
    account: AccountDep,
    now: NowDep,
    done: str | None = None,
) -> Response:
    overview = await service.overview(session, account, now=now)
    return _signed_in_page(
        "overview.html",
        signed_in,
        language,
        active="overview",
        overview=overview,
        chart=service.chart_points(overview.timeline),
        resumed=done == "resumed",
    )


@router.post("/sending/resume")
async def resume_sending(
    form: CheckedFormDep, session: SessionDep, wakeup: WakeupDep, background: BackgroundTasks
) -> Response:
    await service.resume_sending(session)
    background.add_task(wakeup.notify)  # after the commit
    return _redirect(HOME + "?done=resumed")


# -- topics --------------------------------------------------------------------------------


@router.get("/topics")
async def topics_page(
    signed_in: SignedInDep, language: LanguageDep, session: SessionDep, cursor: str | None = None
) -> Response:
    found = await service.topics(session, cursor=cursor)
    return _signed_in_page(
        "topics.html",
        signed_in,
        language,
        active="topics",
        topics=found.topics,
        next_url=(
            "/dashboard/topics?" + urlencode({"cursor": found.next_cursor})
            if found.next_cursor
            else None
        ),
    )


@router.get("/progress")
async def progress_data(
    signed_in: SignedInForDataDep,
    session: SessionDep,
    topic: Annotated[list[str], Query(max_length=service.TOPICS_SHOWN)],
) -> Response:
    """The progress of the topics a page shows, for its progress bars to follow."""
    found = [await service.progress(session, topic_id) for topic_id in topic]
    return JSONResponse(
        {"topics": [progress.as_json() for progress in found]},
        headers={**pages.SECURITY_HEADERS, "Cache-Control": "no-store"},
    )


@router.get("/topic")
async def topic_page(
    signed_in: SignedInDep,
    language: LanguageDep,
    session: SessionDep,
    now: NowDep,
    id: str,
    bucket: Annotated[str, Query(pattern="^(minute|hour|day)$")] = "minute",
    done: str | None = None,
    count: int = 0,
) -> Response:
    view = await service.topic(session, id, bucket=bucket, now=now)
    return _signed_in_page(
        "topic.html",
        signed_in,
        language,
        active="topics",
        view=view,
        chart=service.chart_points(view.timeline),
        buckets=service.CHART_BUCKETS,
        bucket=bucket,
        done=done if done in TOPIC_ACTIONS else None,
        count=count,
    )


@router.post("/topic/{action}")
async def topic_action(
    action: str,
    form: CheckedFormDep,
    session: SessionDep,
    now: NowDep,
    wakeup: WakeupDep,
    background: BackgroundTasks,
) -> Response:
    topic_id = form.get("topic", "")
    match action:
        case "pause":
            await service.pause_topic(session, topic_id, now=now)
            return _redirect(_to_topic(topic_id, done=action))
        case "resume":
            await service.resume_topic(session, topic_id, now=now)
            background.add_task(wakeup.notify)  # after the commit
            return _redirect(_to_topic(topic_id, done=action))
        case "cancel":
            cancelled = await service.cancel_topic(session, topic_id, now=now)
            return _redirect(_to_topic(topic_id, done=action, count=str(cancelled)))
    raise NotFound(f"no such topic action: {action}")


# -- suppression list ----------------------------------------------------------------------


@router.get("/suppressions")
async def suppressions_page(
    signed_in: SignedInDep,
    language: LanguageDep,
    session: SessionDep,
    q: str | None = None,
    cursor: str | None = None,
    removed: str | None = None,
    missing: str | None = None,
) -> Response:
    found = await service.suppressions(session, search=q, cursor=cursor)
    return _signed_in_page(
        "suppressions.html",
        signed_in,
        language,
        active="suppressions",
        page=found,
        search=q or "",
        next_url=(
            "/dashboard/suppressions?" + urlencode({"q": q or "", "cursor": found.next_cursor})
            if found.next_cursor
            else None
        ),
        removed=removed,
        missing=missing,
    )


@router.post("/suppressions/remove")
async def remove_suppression(form: CheckedFormDep, session: SessionDep) -> Response:
    email = form.get("email", "")
    back = {"q": form.get("q", "")}
    try:
        await service.remove_suppression(session, email)
    except NotFound:
        return _redirect("/dashboard/suppressions?" + urlencode({**back, "missing": email}))
    return _redirect("/dashboard/suppressions?" + urlencode({**back, "removed": email}))


# -- webhooks ------------------------------------------------------------------------------


@router.get("/webhooks")
async def webhooks_page(
    signed_in: SignedInDep, language: LanguageDep, session: SessionDep
) -> Response:
    found, failures = await service.webhook_list(session)
    return _signed_in_page(
        "webhooks.html",
        signed_in,
        language,
        active="webhooks",
        webhooks=found,
        failures=failures,
    )


# -- static files and refusals -------------------------------------------------------------


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    found = pages.static_file(name)
    if found is None:
        raise NotFound(f"no such file: {name}")
    return found


async def redirect_to_sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return _redirect(SIGN_IN + "?" + urlencode({"next": exc.wanted}))


async def refuse_without_csrf(request: Request, exc: Exception) -> Response:
    return pages.render(
        "forbidden.html",
        language=language_of(request),
        status_code=403,
        signed_in=False,
    )


def _signed_in_page(
    template: str, signed_in: SignedIn, language: str, *, active: str, **context: Any
) -> Response:
    """A page behind the sign-in: its forms carry the session's CSRF token, the menu marks
    `active`."""
    return pages.render(
        template,
        language=language,
        csrf=signed_in.csrf_token,
        signed_in=True,
        active=active,
        **context,
    )
