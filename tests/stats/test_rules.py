"""The counters' rules on their own: what a change counts for, from the columns a writer gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ses_sender.models import CounterScope, RequestChange, RequestStatus
from ses_sender.stats import counters

AT = datetime(2026, 1, 5, 10, 0, 30, tzinfo=UTC)
MINUTE = int(datetime(2026, 1, 5, 10, 0, tzinfo=UTC).timestamp())
P, S = int(RequestStatus.PROCESSING), int(RequestStatus.SENT)


def test_a_send_counts_once_in_its_topic_its_domain_and_its_minute() -> None:
    change = RequestChange(
        "sale", "a@Gmail.com", {"status": P}, {"status": S, "sent_at": AT, "outcome": None}
    )

    assert counters.change_deltas([change, change]) == {
        (CounterScope.TOPIC, "sale", "", 0, "sent"): 2,
        (CounterScope.DOMAIN, "sale", "Gmail.com", 0, "sent"): 2,
        (CounterScope.TOPIC_TIME, "sale", "", MINUTE, "sent"): 2,
        (CounterScope.ACCOUNT_TIME, "", "", MINUTE, "sent"): 2,
    }


def test_changes_sharing_their_mappings_count_as_each_alone() -> None:
    # A writer shares one mapping among changes alike (a batch of sends, by outcome and
    # minute); interleaved, each still counts in its own topic and domain.
    claimed = {"status": P}
    delivered = {"status": S, "sent_at": AT, "outcome": 20}
    pending = {"status": S, "sent_at": AT, "outcome": None}
    changes = [
        RequestChange("sale", "a@x.org", claimed, pending),
        RequestChange("sale", "b@y.org", claimed, delivered),
        RequestChange("news", "c@x.org", claimed, pending),
        RequestChange("sale", "d@x.org", claimed, delivered),
    ]

    alone: dict[counters.CounterKey, int] = {}
    for change in changes:
        unshared = change._replace(before=dict(change.before or {}), after=dict(change.after))
        for key, value in counters.change_deltas([unshared]).items():
            alone[key] = alone.get(key, 0) + value
    assert counters.change_deltas(changes) == alone


def test_a_change_given_only_what_the_rules_read_of_it_counts_in_full() -> None:
    # An SES Delivery for a request sent and counted, as an SNS batch gives it.
    before = {"status": S, "outcome": None, "delivered_at": None, "event_types": 1}
    after = {"status": S, "outcome": 20, "delivered_at": AT, "event_types": 1 | 16}
    columns = counters.columns_read_with(frozenset({"outcome", "delivered_at", "event_types"}))

    assert set(columns) == set(before)
    deltas = counters.change_deltas([RequestChange("sale", "a@x.org", before, after)])
    assert {key[4] for key, value in deltas.items() if key[0] == CounterScope.TOPIC} == {
        "outcome:delivered",
        "delivered",
        "event:Delivery",
    }


def test_a_claim_counts_for_nothing() -> None:
    claimed = RequestChange("sale", "a@x.org", {"status": 0}, {"status": P})

    assert counters.change_deltas([claimed]) == {}


def test_a_writer_that_leaves_out_a_column_a_rule_needs_is_refused() -> None:
    # A send without its outcome: the sent requests by outcome cannot be counted.
    change = RequestChange("sale", "a@x.org", {"status": P}, {"status": S, "sent_at": AT})

    with pytest.raises(KeyError):
        counters.change_deltas([change])


def test_a_late_delivery_moves_the_first_delivery_to_its_minute() -> None:
    earlier = datetime(2026, 1, 5, 9, 58, tzinfo=UTC)
    change = RequestChange("sale", "a@x.org", {"delivered_at": AT}, {"delivered_at": earlier})

    assert counters.change_deltas([change]) == {
        (CounterScope.TOPIC_TIME, "sale", "", MINUTE, "delivered"): -1,
        (CounterScope.ACCOUNT_TIME, "", "", MINUTE, "delivered"): -1,
        (CounterScope.TOPIC_TIME, "sale", "", MINUTE - 120, "delivered"): 1,
        (CounterScope.ACCOUNT_TIME, "", "", MINUTE - 120, "delivered"): 1,
    }


def test_a_click_found_a_machine_s_moves_its_request_from_people_to_machines() -> None:
    before = {"click_count": 2, "machine_click_count": 1}
    after = {"click_count": 3, "machine_click_count": 3}  # a new one, and one found out

    deltas = counters.change_deltas([RequestChange("sale", "a@x.org", before, after)])

    assert {key[4]: value for key, value in deltas.items()} == {
        "tracked:clicks": 1,
        "machine:clicks": 2,
        "human:clicked": -1,
    }


def test_totals_derive_what_is_not_kept() -> None:
    kept = {"requests": 10, "sent": 5, "failed": 1, "stopped": 1, "processing": 2}
    kept["outcome:delivered"] = 3

    topic = counters.derived_totals(kept, CounterScope.TOPIC)
    domain = counters.derived_totals(kept, CounterScope.DOMAIN)

    assert (topic["created"], topic["outcome:sent"]) == (1, 2)
    assert domain["created"] == 3  # queued or in flight
