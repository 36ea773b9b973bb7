"""An outage is logged once an interval for each place that meets it, never at every try."""

from __future__ import annotations

import logging

import pytest

from ses_sender.db.errors import OutageLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def logger() -> logging.Logger:
    return logging.getLogger("tests.outage_log")


def said(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(record.levelno, record.getMessage()) for record in caplog.records]


def test_each_place_says_it_once_an_interval_then_how_often_it_kept_quiet(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    outage_log = OutageLog(logger, interval_s=60.0, monotonic=clock.monotonic)

    with caplog.at_level(logging.INFO, logger=logger.name):
        for second in range(0, 130, 10):  # a try every 10 s for 130 s, at two places
            clock.now = float(second)
            outage_log.log(logging.WARNING, "worker", "worker: database away: %s", "refused")
            outage_log.log(logging.ERROR, "recorder", "recorder: %d lost", second)

    assert said(caplog) == [
        (logging.WARNING, "worker: database away: refused"),
        (logging.ERROR, "recorder: 0 lost"),
        (
            logging.WARNING,
            "worker: database away: refused (and 5 times more since the last such line)",
        ),
        (logging.ERROR, "recorder: 60 lost (and 5 times more since the last such line)"),
        (
            logging.WARNING,
            "worker: database away: refused (and 5 times more since the last such line)",
        ),
        (logging.ERROR, "recorder: 120 lost (and 5 times more since the last such line)"),
    ]


def test_a_place_quiet_for_an_interval_is_said_again_at_once(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    outage_log = OutageLog(logger, interval_s=60.0, monotonic=clock.monotonic)

    with caplog.at_level(logging.INFO, logger=logger.name):
        outage_log.log(logging.WARNING, "probe", "away")
        clock.now = 61.0
        outage_log.log(logging.WARNING, "probe", "away")

    assert said(caplog) == [(logging.WARNING, "away"), (logging.WARNING, "away")]
