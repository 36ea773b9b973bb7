"""`ses_events.service` against a real session (SQLite and PostgreSQL), without HTTP or SNS."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from ses_sender.composition import Runtime
from ses_sender.errors import InvalidInput
from ses_sender.models import EventType, Outcome, Request, RequestStatus, Suppression
from ses_sender.ses_events import service
from ses_sender.ses_events.schemas import MAX_RECIPIENTS_PER_EVENT, parse_ses_event
from ses_sender.ses_events.service import Ingested, Received
from ses_sender.ses_events.sns import SnsMessage
from ses_sender.ses_tags import REQUEST_ID_TAG
from ses_sender.tracking.classify import RequestShape
from ses_sender.tracking.service import Hit, record_hits
from tests.support.clock import FakeClock
from tests.support.rows import add_request, request_row, stored_payloads, stored_results
from tests.support.ses_events import (
    RECIPIENT,
    SES_MESSAGE_ID,
    SOFT_BOUNCES,
    ingest,
    notification,
    ses_message,
)
from tests.support.tracking import JUDGE


async def suppressed_addresses(runtime: Runtime) -> list[str]:
    async with runtime.sessionmaker() as session:
        return sorted(await session.scalars(select(Suppression.email)))


def minutes(clock: FakeClock, offset: float) -> datetime:
    return clock.now() + timedelta(minutes=offset)


# -- summary precedence ---------------------------------------------------------------------


async def test_earliest_delivery_wins_whatever_the_arrival_order(
    runtime: Runtime, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)

    for offset in (-5, -9, -1):
        message = ses_message("Delivery", at=minutes(clock, offset), request_id=request_id)
        assert await ingest(runtime, message) is Ingested.STORED
        # Each later-arriving one is compared with what is stored, in SQL.

    assert (await request_row(runtime, request_id)).delivered_at == minutes(clock, -9)
    assert len(await stored_results(runtime)) == 3


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("Bounce", "bounced_at"),
        ("Complaint", "complained_at"),
        ("Reject", "rejected_at"),
        ("DeliveryDelay", "delayed_at"),
    ],
)
async def test_every_summary_time_keeps_the_earliest(
    runtime: Runtime, clock: FakeClock, kind: str, field: str
) -> None:
    request_id = await add_request(runtime)
    # Reject has no time of its own: its time is the send's, 2 s before `at`.
    sent_earlier = minutes(clock, -10)
    sent_later = minutes(clock, -3)

    await ingest(runtime, ses_message(kind, at=sent_later, request_id=request_id))
    await ingest(runtime, ses_message(kind, at=sent_earlier, request_id=request_id))
    await ingest(runtime, ses_message(kind, at=minutes(clock, -1), request_id=request_id))

    expected = sent_earlier - timedelta(seconds=2) if kind == "Reject" else sent_earlier
    assert getattr(await request_row(runtime, request_id), field) == expected


async def test_summary_fields_are_independent(runtime: Runtime, clock: FakeClock) -> None:
    request_id = await add_request(runtime)

    await ingest(runtime, ses_message("Delivery", at=minutes(clock, -5), request_id=request_id))
    await ingest(runtime, ses_message("Bounce", at=minutes(clock, -4), request_id=request_id))
    await ingest(runtime, ses_message("Complaint", at=minutes(clock, -1), request_id=request_id))

    row = await request_row(runtime, request_id)
    assert row.delivered_at == minutes(clock, -5)
    assert (row.bounced_at, row.bounce_type) == (minutes(clock, -4), "Permanent/General")
    assert (row.complained_at, row.complaint_type) == (minutes(clock, -1), "abuse")
    assert (row.rejected_at, row.delayed_at) == (None, None)


async def test_bounce_type_without_a_subtype(runtime: Runtime, clock: FakeClock) -> None:
    request_id = await add_request(runtime)
    message = ses_message(
        "Bounce",
        at=minutes(clock, -1),
        request_id=request_id,
        bounceType="Transient",
        bounceSubType=None,
    )

    await ingest(runtime, message)

    assert (await request_row(runtime, request_id)).bounce_type == "Transient"


def test_events_without_a_summary_field_change_no_summary(clock: FakeClock) -> None:
    for kind in ("Send", "Open", "Click", "Rendering Failure"):
        event = parse_ses_event(ses_message(kind, at=clock.now()))
        assert service.summary_change(event, request_id=1) is None


# -- finding the request --------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        "999999",  # no such request
        "abc",
        "-1",
        "",
        "12.0",
        "²",  # str.isdigit() says yes, int() says no
        "99999999999999999999999",  # beyond BIGINT
    ],
)
async def test_unusable_request_tag_falls_back_to_the_message_id(
    runtime: Runtime, clock: FakeClock, tag: str
) -> None:
    request_id = await add_request(runtime)
    message = ses_message("Delivery", at=minutes(clock, -1), request_id=tag)

    assert await ingest(runtime, message) is Ingested.STORED

    [result] = await stored_results(runtime)
    assert result.request_id == request_id
    assert (await request_row(runtime, request_id)).delivered_at == minutes(clock, -1)


async def test_tag_names_the_request_before_its_message_id_is_stored(
    runtime: Runtime, clock: FakeClock
) -> None:
    request_id = await add_request(runtime, message_id=None, status=RequestStatus.PROCESSING)

    await ingest(runtime, ses_message("Delivery", at=minutes(clock, -1), request_id=request_id))

    [result] = await stored_results(runtime)
    assert (result.request_id, result.ses_message_id) == (request_id, SES_MESSAGE_ID)


async def test_unknown_message_waits_without_touching_any_request(
    runtime: Runtime, clock: FakeClock
) -> None:
    request_id = await add_request(runtime, message_id="another-message-000000")

    await ingest(runtime, ses_message("Bounce", at=minutes(clock, -1), identity=True))

    [result] = await stored_results(runtime)
    assert (result.request_id, result.ses_message_id) == (None, SES_MESSAGE_ID)
    assert result.recipient == RECIPIENT
    assert (await request_row(runtime, request_id)).bounced_at is None


# -- stored once ----------------------------------------------------------------------------


async def test_a_redelivered_sns_message_is_a_duplicate(runtime: Runtime, clock: FakeClock) -> None:
    request_id = await add_request(runtime)
    sns_id = str(uuid.uuid4())
    first = ses_message("Delivery", at=minutes(clock, -5), request_id=request_id)
    # The same SNS message id can only carry the same event; a different one proves no re-apply.
    second = ses_message("Delivery", at=minutes(clock, -9), request_id=request_id)

    assert await ingest(runtime, first, message_id=sns_id) is Ingested.STORED
    assert await ingest(runtime, second, message_id=sns_id) is Ingested.DUPLICATE

    assert len(await stored_results(runtime)) == 1
    assert await stored_payloads(runtime) == {sns_id: first}
    assert (await request_row(runtime, request_id)).delivered_at == minutes(clock, -5)


async def test_ses_subscription_test_message_is_ignored(runtime: Runtime) -> None:
    message = '{"notificationType":"AmazonSnsSubscriptionSucceeded","message":"You have ..."}'

    assert await ingest(runtime, message) is Ingested.IGNORED
    assert await stored_results(runtime) == []


@pytest.mark.parametrize("message", ["Hello world", "{}", '{"eventType":"Delivery"}'])
async def test_not_an_ses_event_is_invalid_input(runtime: Runtime, message: str) -> None:
    with pytest.raises(InvalidInput, match=r"^Message: not an SES event: "):
        await ingest(runtime, message)
    assert await stored_results(runtime) == []


# -- events that wait for their send --------------------------------------------------------


async def test_waiting_message_ids(runtime: Runtime, clock: FakeClock) -> None:
    attached = await add_request(runtime, message_id="attached-000000")
    for ses_id in ("waiting-1", "waiting-1", "waiting-2", "attached-000000"):
        message = ses_message("Delivery", at=clock.now(), ses_message_id=ses_id, identity=True)
        await ingest(runtime, message)

    async with runtime.sessionmaker() as session:
        assert await service.waiting_message_ids(session, []) == []
        found = await service.waiting_message_ids(
            session, ["waiting-1", "waiting-2", "attached-000000", "nothing-000000"]
        )
    assert sorted(found) == ["waiting-1", "waiting-2"]
    results = await stored_results(runtime)
    assert [r.request_id for r in results if r.ses_message_id == "attached-000000"] == [attached]


async def test_adopt_waiting_events_attaches_and_applies_them(
    runtime: Runtime, clock: FakeClock
) -> None:
    request_id = await add_request(runtime, message_id=None, status=RequestStatus.PROCESSING)
    await ingest(runtime, ses_message("Delivery", at=minutes(clock, -3), identity=True))
    await ingest(runtime, ses_message("Bounce", at=minutes(clock, -2), identity=True))
    await ingest(runtime, ses_message("Open", at=minutes(clock, -1), ses_message_id="other"))
    assert await suppressed_addresses(runtime) == []  # not ours yet: it changes nothing

    async with runtime.sessionmaker() as session, session.begin():
        await service.adopt_waiting_events(
            session, request_id, SES_MESSAGE_ID, soft_bounces=SOFT_BOUNCES, now=clock.now()
        )

    assert await suppressed_addresses(runtime) == [RECIPIENT]  # the bounce, now applied
    attached = {(r.status, r.request_id) for r in await stored_results(runtime)}
    assert attached == {("Delivery", request_id), ("Bounce", request_id), ("SesOpen", None)}
    row = await request_row(runtime, request_id)
    assert (row.delivered_at, row.bounced_at) == (minutes(clock, -3), minutes(clock, -2))
    assert row.open_count == 0

    # Adopting again finds nothing left to do.
    async with runtime.sessionmaker() as session, session.begin():
        await service.adopt_waiting_events(
            session, request_id, SES_MESSAGE_ID, soft_bounces=SOFT_BOUNCES, now=clock.now()
        )
        requests = (await session.scalars(select(Request))).all()
    assert [r.delivered_at for r in requests] == [minutes(clock, -3)]


async def test_the_bounce_type_stays_with_the_earliest_bounce(
    runtime: Runtime, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)
    early = ses_message(
        "Bounce", at=minutes(clock, -9), request_id=request_id, bounceType="Permanent"
    )
    late = ses_message(
        "Bounce",
        at=minutes(clock, -1),
        request_id=request_id,
        bounceType="Transient",
        bounceSubType="MailboxFull",
    )

    await ingest(runtime, early)
    await ingest(runtime, late)  # arrives after, happened after: changes nothing

    row = await request_row(runtime, request_id)
    assert (row.bounced_at, row.bounce_type) == (minutes(clock, -9), "Permanent/General")


async def test_a_complaint_type_is_not_erased_by_a_later_complaint_without_one(
    runtime: Runtime, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)
    later_without_type = ses_message(
        "Complaint", at=minutes(clock, -1), request_id=request_id, complaintFeedbackType=None
    )

    await ingest(runtime, ses_message("Complaint", at=minutes(clock, -5), request_id=request_id))
    await ingest(runtime, later_without_type)

    row = await request_row(runtime, request_id)
    assert (row.complained_at, row.complaint_type) == (minutes(clock, -5), "abuse")


async def test_stranded_events_are_adopted_by_the_sweep(runtime: Runtime, clock: FakeClock) -> None:
    """An identity notification stored while its send was being recorded, in parallel."""
    await ingest(runtime, ses_message("Delivery", at=minutes(clock, -1), identity=True))
    request_id = await add_request(runtime)  # the send's record committed just after

    async with runtime.sessionmaker() as session, session.begin():
        adopted = await service.adopt_stranded_events(
            session, soft_bounces=SOFT_BOUNCES, now=clock.now()
        )
    async with runtime.sessionmaker() as session, session.begin():
        again = await service.adopt_stranded_events(
            session, soft_bounces=SOFT_BOUNCES, now=clock.now()
        )

    assert (adopted, again) == (1, 0)
    [result] = await stored_results(runtime)
    assert result.request_id == request_id
    assert (await request_row(runtime, request_id)).delivered_at == minutes(clock, -1)


async def test_the_sweep_ignores_old_events_for_mail_that_is_not_ours(
    runtime: Runtime, clock: FakeClock
) -> None:
    await ingest(runtime, ses_message("Delivery", at=minutes(clock, -1), identity=True))
    clock.advance(2 * 24 * 3600)
    await add_request(runtime)

    async with runtime.sessionmaker() as session, session.begin():
        assert (
            await service.adopt_stranded_events(session, soft_bounces=SOFT_BOUNCES, now=clock.now())
            == 0
        )


# -- the outcome: the strongest word wins, whatever the order -------------------------------

SOFT: dict[str, Any] = {"bounceType": "Transient", "bounceSubType": "MailboxFull"}
HARD: dict[str, Any] = {"bounceType": "Permanent", "bounceSubType": "General"}


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([("Delivery", {})], Outcome.DELIVERED),
        ([("Delivery", {}), ("Bounce", HARD)], Outcome.BOUNCED),
        ([("Bounce", HARD), ("Delivery", {})], Outcome.BOUNCED),  # the delivery arrived late
        ([("Complaint", {}), ("Open", {}), ("Click", {})], Outcome.COMPLAINED),
        ([("Complaint", {}), ("Bounce", HARD), ("Delivery", {})], Outcome.COMPLAINED),
        ([("DeliveryDelay", {}), ("Delivery", {})], Outcome.DELIVERED),
        ([("Delivery", {}), ("DeliveryDelay", {})], Outcome.DELIVERED),
        ([("DeliveryDelay", {}), ("Bounce", SOFT)], Outcome.SOFT_BOUNCED),
        ([("Bounce", SOFT), ("Bounce", HARD)], Outcome.BOUNCED),
        ([("Bounce", HARD), ("Bounce", SOFT)], Outcome.BOUNCED),
        ([("Bounce", {"bounceType": "Undetermined"})], Outcome.SOFT_BOUNCED),
        ([("Send", {}), ("Reject", {})], Outcome.REJECTED),
        ([("Send", {}), ("Open", {}), ("Rendering Failure", {})], None),
    ],
)
async def test_the_outcome_is_the_strongest_event(
    runtime: Runtime,
    clock: FakeClock,
    events: list[tuple[str, dict[str, Any]]],
    expected: Outcome | None,
) -> None:
    request_id = await add_request(runtime)

    for offset, (kind, detail) in enumerate(events):
        message = ses_message(kind, at=minutes(clock, offset - 10), request_id=request_id, **detail)
        assert await ingest(runtime, message) is Ingested.STORED

    assert (await request_row(runtime, request_id)).outcome == expected


async def test_the_outcome_does_not_depend_on_the_arrival_order(
    runtime: Runtime, clock: FakeClock
) -> None:
    events = [
        ses_message("DeliveryDelay", at=minutes(clock, -9)),
        ses_message("Delivery", at=minutes(clock, -8)),
        ses_message("Bounce", at=minutes(clock, -7), **SOFT),
        ses_message("Complaint", at=minutes(clock, -6)),
    ]
    outcomes = set()
    for order in itertools.permutations(events):
        request_id = await add_request(runtime, message_id=f"message-{uuid.uuid4()}")
        for message in order:
            retagged = message.replace(SES_MESSAGE_ID, "unused")
            await ingest(runtime, _tagged(retagged, request_id))
        outcomes.add((await request_row(runtime, request_id)).outcome)

    assert outcomes == {Outcome.COMPLAINED}


def _tagged(message: str, request_id: int) -> str:
    """The event publishing `message` with our request tag naming `request_id`."""
    document = json.loads(message)
    document["mail"]["tags"][REQUEST_ID_TAG] = [str(request_id)]
    return json.dumps(document) + "\n"


async def test_our_own_open_after_a_complaint_leaves_it_complained(
    runtime: Runtime, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)
    await ingest(runtime, ses_message("Complaint", at=minutes(clock, -5), request_id=request_id))

    async with runtime.sessionmaker() as session, session.begin():
        opened = Hit(EventType.OPEN, request_id, clock.now(), RequestShape("GET", "Mozilla", None))
        assert await record_hits(session, [opened], judge=JUDGE, now=clock.now()) == 1

    row = await request_row(runtime, request_id)
    assert (row.outcome, row.open_count) == (Outcome.COMPLAINED, 1)


# -- one row per recipient ------------------------------------------------------------------


def bounced(*addresses: str) -> dict[str, Any]:
    return {"bouncedRecipients": [{"emailAddress": address} for address in addresses]}


async def test_an_event_for_several_recipients_is_stored_once_per_recipient(
    runtime: Runtime, clock: FakeClock
) -> None:
    # One SES message to two of our recipients, and a third address we never sent to.
    first = await add_request(runtime, to="ann@example.net")
    second = await add_request(runtime, to="bob@example.net")
    message = ses_message(
        "Bounce",
        at=minutes(clock, -1),
        identity=True,
        **bounced("ann@example.net", "bob@example.net", "eve@example.net"),
    )
    sns_id = str(uuid.uuid4())

    assert await ingest(runtime, message, message_id=sns_id) is Ingested.STORED
    assert await ingest(runtime, message, message_id=sns_id) is Ingested.DUPLICATE

    results = await stored_results(runtime)
    assert sorted((r.recipient, r.request_id, r.sns_message_id) for r in results) == [
        ("ann@example.net", first, sns_id),
        ("bob@example.net", second, sns_id),
        ("eve@example.net", None, sns_id),
    ]
    assert await stored_payloads(runtime) == {sns_id: message}  # once, not once per recipient
    for request_id in (first, second):
        row = await request_row(runtime, request_id)
        assert (row.bounced_at, row.outcome) == (minutes(clock, -1), Outcome.BOUNCED)


async def test_an_event_naming_the_most_recipients_stores_what_it_carried_once(
    runtime: Runtime, clock: FakeClock
) -> None:
    addresses = [f"user{number}@example.net" for number in range(MAX_RECIPIENTS_PER_EVENT)]
    message = ses_message("Bounce", at=minutes(clock, -1), identity=True, **bounced(*addresses))
    sns_id = str(uuid.uuid4())
    copy = notification(message, sent_at=clock.now(), message_id=sns_id)

    # SNS may post a message again before the first post is answered, or long after.
    assert await ingest_batch(runtime, [copy, copy]) == [Ingested.STORED, Ingested.DUPLICATE]
    assert await ingest(runtime, message, message_id=sns_id) is Ingested.DUPLICATE

    assert len(await stored_results(runtime)) == MAX_RECIPIENTS_PER_EVENT
    assert await stored_payloads(runtime) == {sns_id: message}


async def test_stored_recipients_are_normalised_and_match_by_key(
    runtime: Runtime, clock: FakeClock
) -> None:
    request_id = await add_request(runtime, to="Jane.Doe@example.net")
    message = ses_message(
        "Delivery",
        at=minutes(clock, -1),
        identity=True,
        recipients=["Jane Doe <Jane.Doe@EXAMPLE.NET>", " Jane.Doe@Example.Net "],
    )

    await ingest(runtime, message)

    [result] = await stored_results(runtime)  # both spellings are one recipient
    assert (result.recipient, result.request_id) == ("Jane.Doe@example.net", request_id)
    assert (await request_row(runtime, request_id)).delivered_at == minutes(clock, -1)


async def test_an_event_for_another_recipient_of_the_message_leaves_the_request_alone(
    runtime: Runtime, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)  # to jane@example.net
    message = ses_message(
        "Bounce", at=minutes(clock, -1), request_id=request_id, **bounced("joe@example.net")
    )

    await ingest(runtime, message)

    [result] = await stored_results(runtime)
    assert (result.recipient, result.request_id) == ("joe@example.net", None)
    row = await request_row(runtime, request_id)
    assert (row.bounced_at, row.outcome) == (None, None)


async def test_an_event_naming_nobody_is_still_stored_once(
    runtime: Runtime, clock: FakeClock
) -> None:
    message = ses_message("Bounce", at=minutes(clock, -1), identity=True, **bounced())
    sns_id = str(uuid.uuid4())

    assert await ingest(runtime, message, message_id=sns_id) is Ingested.STORED
    assert await ingest(runtime, message, message_id=sns_id) is Ingested.DUPLICATE

    [result] = await stored_results(runtime)
    assert (result.recipient, result.request_id) == ("", None)
    async with runtime.sessionmaker() as session:
        assert (await session.scalars(select(Suppression))).all() == []  # nobody to suppress


async def test_adoption_attaches_only_the_requests_own_recipient(
    runtime: Runtime, clock: FakeClock
) -> None:
    message = ses_message(
        "Bounce", at=minutes(clock, -1), identity=True, **bounced(RECIPIENT, "joe@example.net")
    )
    await ingest(runtime, message)  # before the send is recorded
    request_id = await add_request(runtime)

    async with runtime.sessionmaker() as session, session.begin():
        await service.adopt_waiting_events(
            session, request_id, SES_MESSAGE_ID, soft_bounces=SOFT_BOUNCES, now=clock.now()
        )
    async with runtime.sessionmaker() as session, session.begin():
        # The other recipient's row is no match for the sweep either.
        assert (
            await service.adopt_stranded_events(session, soft_bounces=SOFT_BOUNCES, now=clock.now())
            == 0
        )

    results = await stored_results(runtime)
    assert sorted((r.recipient, r.request_id) for r in results) == [
        (RECIPIENT, request_id),
        ("joe@example.net", None),
    ]
    assert (await request_row(runtime, request_id)).outcome == Outcome.BOUNCED


# -- a batch: the notifications of one group commit, taken together --------------------------


async def ingest_batch(runtime: Runtime, batch: list[SnsMessage]) -> list[Ingested]:
    now = runtime.clock.now()
    async with runtime.sessionmaker() as session, session.begin():
        return await service.ingest_notifications(
            session, [Received(item, now) for item in batch], soft_bounces=SOFT_BOUNCES
        )


async def test_a_batch_comes_out_as_its_notifications_one_by_one(
    runtime: Runtime, clock: FakeClock
) -> None:
    tagged = await add_request(runtime, message_id="tagged-000000", to="ann@example.net")
    by_message_id = await add_request(runtime, to="bob@example.net")
    delivered = notification(
        ses_message(
            "Delivery",
            at=minutes(clock, -2),
            ses_message_id="tagged-000000",
            request_id=tagged,
            recipient="ann@example.net",
        ),
        sent_at=clock.now(),
    )
    batch = [
        delivered,
        # Same request, happened earlier, arrived later: the earliest still wins.
        notification(
            ses_message(
                "Delivery",
                at=minutes(clock, -4),
                ses_message_id="tagged-000000",
                request_id=tagged,
                recipient="ann@example.net",
            ),
            sent_at=clock.now(),
        ),
        notification(
            ses_message(
                "Complaint",
                at=minutes(clock, -1),
                ses_message_id="tagged-000000",
                request_id=tagged,
                recipient="ann@example.net",
            ),
            sent_at=clock.now(),
        ),
        # An identity notification: no tag, found by its message id.
        notification(
            ses_message(
                "Bounce",
                at=minutes(clock, -3),
                identity=True,
                recipient="bob@example.net",
            ),
            sent_at=clock.now(),
        ),
        notification(
            ses_message("Delivery", at=minutes(clock, -1), ses_message_id="not-ours-000000"),
            sent_at=clock.now(),
        ),
        notification(
            '{"notificationType":"AmazonSnsSubscriptionSucceeded","message":"You have ..."}',
            sent_at=clock.now(),
        ),
        delivered,  # SNS delivered it again before the first was answered
    ]

    outcomes = await ingest_batch(runtime, batch)

    assert outcomes == [*[Ingested.STORED] * 5, Ingested.IGNORED, Ingested.DUPLICATE]
    results = await stored_results(runtime)
    assert sorted(((r.status, r.request_id, r.recipient) for r in results), key=str) == sorted(
        [
            ("Delivery", tagged, "ann@example.net"),
            ("Delivery", tagged, "ann@example.net"),
            ("Complaint", tagged, "ann@example.net"),
            ("Bounce", by_message_id, "bob@example.net"),
            ("Delivery", None, RECIPIENT),  # waits for its send to be recorded
        ],
        key=str,
    )
    ann = await request_row(runtime, tagged)
    assert (ann.delivered_at, ann.complained_at) == (minutes(clock, -4), minutes(clock, -1))
    assert (ann.complaint_type, ann.outcome) == ("abuse", Outcome.COMPLAINED)
    bob = await request_row(runtime, by_message_id)
    assert (bob.bounced_at, bob.bounce_type) == (minutes(clock, -3), "Permanent/General")
    assert bob.outcome == Outcome.BOUNCED
    async with runtime.sessionmaker() as session:
        suppressed = (await session.scalars(select(Suppression.email))).all()
    assert sorted(suppressed) == ["ann@example.net", "bob@example.net"]


async def test_a_batch_records_the_sends_ses_reports(runtime: Runtime, clock: FakeClock) -> None:
    requeued = [
        await add_request(runtime, message_id=None, status=RequestStatus.PROCESSING, to=to)
        for to in ("ann@example.net", "bob@example.net")
    ]
    batch = [
        notification(
            ses_message(
                "Send",
                at=minutes(clock, -1),
                ses_message_id=f"ses-{index}",
                request_id=request_id,
                recipient=to,
            ),
            sent_at=clock.now(),
        )
        for index, (request_id, to) in enumerate(
            zip(requeued, ("ann@example.net", "bob@example.net"), strict=True)
        )
    ]

    assert await ingest_batch(runtime, batch) == [Ingested.STORED] * 2

    for index, request_id in enumerate(requeued):
        row = await request_row(runtime, request_id)
        assert (row.status, row.message_id) == (RequestStatus.SENT, f"ses-{index}")
        # Send has no time of its own: its time is the send's, 2 s before `at`.
        assert row.sent_at == minutes(clock, -1) - timedelta(seconds=2)
