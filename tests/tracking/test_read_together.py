"""Reads of many keys at a time (`ReadTogether`), as the redirect reads a campaign's first
clicks: keys asked while a read is under way go together into the next, and a failure or a
caller that goes away strands no one."""

from __future__ import annotations

import asyncio

import pytest

from ses_sender.tracking.service import ReadTogether


class Reads:
    """A read the test finishes when it chooses, recording the keys each read was asked."""

    def __init__(self) -> None:
        self.asked: list[set[str]] = []
        self.release = asyncio.Event()
        self.fail_with: Exception | None = None

    async def __call__(self, keys: set[str]) -> dict[str, str]:
        self.asked.append(set(keys))
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return {key: key.upper() for key in keys if key != "missing"}


async def settled() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_keys_asked_during_a_read_are_read_together_and_a_key_once() -> None:
    reads = Reads()
    together = ReadTogether(reads)

    first = asyncio.create_task(together.get("a"))
    await settled()  # the read of "a" is under way
    later = [asyncio.create_task(together.get(key)) for key in ("b", "c", "b", "a", "missing")]
    await settled()
    reads.release.set()

    assert await first == "A"
    assert [await task for task in later] == ["B", "C", "B", "A", None]
    assert reads.asked == [{"a"}, {"b", "c", "missing"}]


async def test_a_failed_read_fails_its_callers_and_the_next_ask_reads_again() -> None:
    reads = Reads()
    together = ReadTogether(reads)
    reads.fail_with = ConnectionError("the database went away")
    reads.release.set()

    callers = [asyncio.create_task(together.get(key)) for key in ("a", "b")]
    results = await asyncio.gather(*callers, return_exceptions=True)
    reads.fail_with = None

    assert [type(result) for result in results] == [ConnectionError, ConnectionError]
    assert await together.get("a") == "A"
    assert reads.asked == [{"a", "b"}, {"a"}]


async def test_a_caller_that_goes_away_leaves_the_read_to_the_others() -> None:
    reads = Reads()
    together = ReadTogether(reads)

    leaving = asyncio.create_task(together.get("a"))
    staying = asyncio.create_task(together.get("a"))
    await settled()
    leaving.cancel()
    await settled()
    reads.release.set()

    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert await staying == "A"
    assert reads.asked == [{"a"}]


async def test_a_read_that_does_not_end_fails_its_callers_and_holds_up_no_later_read() -> None:
    """A connection gone dead without closing: its read never ends."""
    stuck = Reads()
    answering = Reads()
    answering.release.set()
    reads = iter([stuck, answering])
    together = ReadTogether(lambda keys: next(reads)(keys), timeout_s=0.05)

    with pytest.raises(TimeoutError):
        await together.get("a")
    assert await together.get("a") == "A"
    assert (stuck.asked, answering.asked) == ([{"a"}], [{"a"}])
    stuck.release.set()  # the stuck read ends at last, and with it its task
    await settled()
