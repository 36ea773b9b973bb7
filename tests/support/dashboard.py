"""Signing in to the dashboard as a browser does: the form, its CSRF token, the cookie."""

from __future__ import annotations

import re

import httpx

from tests.support.settings import API_KEY

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str = API_KEY) -> httpx.Response:
    """Open the sign-in page and post its form with `key`; the answer to the post."""
    form = await client.get("/dashboard/sign-in")
    return await client.post(
        "/dashboard/sign-in", data={"csrf": csrf_of(form.text), "key": key, "next": "/dashboard"}
    )


async def signed_in_token(client: httpx.AsyncClient) -> str:
    """Sign in; the session's CSRF token, as the pages carry it."""
    answer = await sign_in(client)
    assert answer.status_code == 303, answer.text
    return csrf_of((await client.get("/dashboard")).text)
