"""Each recorded request shape judged as the signatures say, without a database."""

from __future__ import annotations

import pytest

from ses_sender.tracking.classify import Reason, RequestShape, Signatures, Verdict
from tests.support.tracking import RecordedShape, recorded_shapes

SIGNATURES = Signatures.packaged()


@pytest.mark.parametrize("recorded", recorded_shapes("opens"), ids=str)
def test_recorded_opens(recorded: RecordedShape) -> None:
    assert SIGNATURES.judge_open(recorded.shape) == Verdict(
        recorded.machine, Reason(recorded.reason)
    )


@pytest.mark.parametrize("recorded", recorded_shapes("clicks"), ids=str)
def test_recorded_clicks_by_their_request_alone(recorded: RecordedShape) -> None:
    verdict = SIGNATURES.judge_click(recorded.shape)

    if recorded.machine:
        assert verdict == Verdict(True, Reason(recorded.reason))
    else:
        assert verdict is None  # nothing in the request says machine


def test_every_scanner_network_in_the_data_file_is_one() -> None:
    for network in SIGNATURES.scanner_networks:
        shape = RequestShape("GET", "Mozilla/5.0 (Windows NT 10.0) Chrome/120", str(network[1]))
        assert SIGNATURES.judge_click(shape) == Verdict(True, Reason.SCANNER_NETWORK)


def test_an_unparsable_address_is_no_evidence() -> None:
    shape = RequestShape("GET", "Mozilla/5.0 (Windows NT 10.0) Chrome/120", "unknown")

    assert SIGNATURES.judge_click(shape) is None
