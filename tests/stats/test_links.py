"""A link's counters: its URL as their key (cut past `MAX_LINK_BYTES`, alike in Python and in
SQL), and what a change to a request's clicks of it counts for."""

from __future__ import annotations

import pytest
from sqlalchemy import Text, literal, select

from ses_sender.composition import Runtime
from ses_sender.models import CounterScope
from ses_sender.stats import build, counters
from ses_sender.stats.counters import LINK_CUT, MAX_LINK_BYTES, LinkChange

SITE = "https://shop.example/"
FITTING = {"short": SITE + "sale", "at-the-limit": SITE + "a" * (MAX_LINK_BYTES - len(SITE))}
# By the width, in UTF-8, of the character the cut falls in or after.
LONGER = {
    "one-byte-over": SITE + "a" * (MAX_LINK_BYTES - len(SITE) + 1),
    **{
        f"{len(char.encode())}-byte-characters-shifted-{shift}": SITE + "a" * shift + char * 800
        for char in ("é", "€", "😀")
        for shift in range(4)
    },
}
URLS = {**FITTING, **LONGER}


@pytest.mark.parametrize("url", FITTING.values(), ids=FITTING.keys())
def test_a_url_up_to_the_limit_is_its_own_key(url: str) -> None:
    assert counters.link_key(url) == url


@pytest.mark.parametrize("url", LONGER.values(), ids=LONGER.keys())
def test_a_longer_url_is_cut_after_the_last_character_that_fits_and_marked(url: str) -> None:
    key = counters.link_key(url)
    kept = key.removesuffix(LINK_CUT)

    assert key.endswith(LINK_CUT)
    assert url.startswith(kept)
    assert len(key.encode()) <= MAX_LINK_BYTES
    # The next character would not have fitted.
    assert len((kept + url[len(kept)] + LINK_CUT).encode()) > MAX_LINK_BYTES


async def test_the_database_cuts_a_url_as_python_does(runtime: Runtime) -> None:
    async with runtime.sessionmaker() as session:
        dialect = session.get_bind().dialect.name
        found = {
            name: await session.scalar(select(build.link_key_sql(dialect, literal(url, Text()))))
            for name, url in URLS.items()
        }

    assert found == {name: counters.link_key(url) for name, url in URLS.items()}


def test_a_click_found_a_machine_s_moves_its_request_from_people_to_machines_on_its_link() -> None:
    before = {"click_count": 1, "machine_click_count": 0}
    after = {"click_count": 2, "machine_click_count": 2}  # a new one, and the first found out

    deltas = counters.link_deltas([LinkChange("sale", SITE + "sale", before, after)])

    assert deltas == {
        (CounterScope.LINK, "sale", SITE + "sale", 0, "tracked:clicks"): 1,
        (CounterScope.LINK, "sale", SITE + "sale", 0, "machine:clicks"): 2,
        (CounterScope.LINK, "sale", SITE + "sale", 0, "human:clicked"): -1,
        (CounterScope.LINK, "sale", SITE + "sale", 0, "machine:clicked"): 1,
    }
