"""What SES feedback puts on the suppression list, through `ingest_notification` on a real
database (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from ses_sender.composition import Runtime
from ses_sender.ses_events.service import Ingested
from ses_sender.suppression.service import SoftBounceRule
from tests.support.clock import FakeClock
from tests.support.rows import add_request, suppressions
from tests.support.ses_events import RECIPIENT, ingest, ses_message

FULL = "smtp; 552 5.2.2 mailbox full"
SOFT = {
    "bounceType": "Transient",
    "bounceSubType": "MailboxFull",
    "bouncedRecipients": [{"emailAddress": RECIPIENT, "diagnosticCode": FULL}],
}
RULE = SoftBounceRule(limit=3, window=timedelta(days=7))
ONE_BOUNCE = SoftBounceRule(limit=1, window=timedelta(days=1))


async def soft_bounce(
    runtime: Runtime, clock: FakeClock, *, to: str = RECIPIENT, ours: bool = True, **detail: Any
) -> str:
    """A transient bounce of an email of its own (each bounce is another SES message), to `to`;
    `ours`: an email we sent (a request), else one SES sent for someone else on the account."""
    message_id = f"m-{uuid.uuid4()}"
    if ours:
        await add_request(runtime, message_id=message_id, to=to)
    bounced = {"bouncedRecipients": [{"emailAddress": to, "diagnosticCode": FULL}]}
    return ses_message(
        "Bounce", at=clock.now(), ses_message_id=message_id, **{**SOFT, **bounced, **detail}
    )


async def test_a_permanent_bounce_suppresses_the_address_at_once(
    runtime: Runtime, clock: FakeClock
) -> None:
    await add_request(runtime)
    await ingest(runtime, ses_message("Bounce", at=clock.now(), identity=True))

    assert await suppressions(runtime) == {
        RECIPIENT: ("bounce", "Permanent/General: smtp; 550 5.1.1 user unknown")
    }


async def test_every_bounced_recipient_is_suppressed_under_its_key(
    runtime: Runtime, clock: FakeClock
) -> None:
    message = ses_message(
        "Bounce",
        at=clock.now(),
        bounceSubType="NoEmail",
        bouncedRecipients=[{"emailAddress": "Ann@EXAMPLE.net"}, {"emailAddress": "bob@x.org"}],
    )
    for to in ("Ann@example.net", "bob@x.org"):
        await add_request(runtime, to=to)

    await ingest(runtime, message)

    assert await suppressions(runtime) == {
        "Ann@example.net": ("bounce", "Permanent/NoEmail"),
        "bob@x.org": ("bounce", "Permanent/NoEmail"),
    }


async def test_a_complaint_suppresses_the_address(runtime: Runtime, clock: FakeClock) -> None:
    await add_request(runtime)
    await ingest(runtime, ses_message("Complaint", at=clock.now()))

    assert await suppressions(runtime) == {RECIPIENT: ("complaint", "abuse")}


@pytest.mark.parametrize(
    "kind", ["Send", "Delivery", "DeliveryDelay", "Open", "Click", "Reject", "Rendering Failure"]
)
async def test_other_events_suppress_nobody(runtime: Runtime, clock: FakeClock, kind: str) -> None:
    await add_request(runtime)
    await ingest(runtime, ses_message(kind, at=clock.now()))

    assert await suppressions(runtime) == {}


async def test_soft_bounces_suppress_at_the_limit(runtime: Runtime, clock: FakeClock) -> None:
    await ingest(runtime, await soft_bounce(runtime, clock))
    clock.advance(24 * 3600)
    await ingest(runtime, await soft_bounce(runtime, clock))
    assert await suppressions(runtime) == {}

    clock.advance(24 * 3600)
    await ingest(runtime, await soft_bounce(runtime, clock))

    assert await suppressions(runtime) == {
        RECIPIENT: ("bounce", f"3 bounces within 7 days, the last Transient/MailboxFull: {FULL}")
    }


async def test_soft_bounces_older_than_the_window_do_not_count(
    runtime: Runtime, clock: FakeClock
) -> None:
    await ingest(runtime, await soft_bounce(runtime, clock))
    clock.advance(8 * 24 * 3600)
    await ingest(runtime, await soft_bounce(runtime, clock))
    await ingest(runtime, await soft_bounce(runtime, clock))

    assert await suppressions(runtime) == {}


async def test_a_bounce_reported_twice_counts_once(runtime: Runtime, clock: FakeClock) -> None:
    """Identity notifications and event publishing both on: two SNS messages, one bounce."""
    message = await soft_bounce(runtime, clock)
    for _ in range(3):
        assert await ingest(runtime, message) is Ingested.STORED  # a new SNS id each time

    assert await suppressions(runtime) == {}


async def test_a_redelivered_notification_counts_once(runtime: Runtime, clock: FakeClock) -> None:
    sns_id = str(uuid.uuid4())
    await ingest(runtime, await soft_bounce(runtime, clock))
    second = await soft_bounce(runtime, clock)
    await ingest(runtime, second, message_id=sns_id)

    assert await ingest(runtime, second, message_id=sns_id) is Ingested.DUPLICATE

    assert await suppressions(runtime) == {}


async def test_other_addresses_bounces_do_not_count(runtime: Runtime, clock: FakeClock) -> None:
    await ingest(runtime, await soft_bounce(runtime, clock, to="a@x.org"))
    await ingest(runtime, await soft_bounce(runtime, clock, to="b@x.org"))
    await ingest(runtime, await soft_bounce(runtime, clock))

    assert await suppressions(runtime) == {}


async def test_bounces_of_mail_that_is_not_ours_do_not_count(
    runtime: Runtime, clock: FakeClock
) -> None:
    """Another sender on the account (or a forger) cannot push an address of ours over."""
    await ingest(runtime, await soft_bounce(runtime, clock, ours=False))
    await ingest(runtime, await soft_bounce(runtime, clock, ours=False))
    await ingest(runtime, await soft_bounce(runtime, clock))

    assert await suppressions(runtime) == {}


async def test_feedback_about_addresses_we_never_mailed_suppresses_nobody(
    runtime: Runtime, clock: FakeClock
) -> None:
    await ingest(runtime, ses_message("Complaint", at=clock.now()))
    await ingest(runtime, ses_message("Bounce", at=clock.now(), identity=True))
    await ingest(runtime, await soft_bounce(runtime, clock, ours=False), soft_bounces=ONE_BOUNCE)

    assert await suppressions(runtime) == {}


async def test_a_limit_of_one_suppresses_on_the_first_soft_bounce(
    runtime: Runtime, clock: FakeClock
) -> None:
    undetermined = await soft_bounce(
        runtime,
        clock,
        bounceType="Undetermined",
        bounceSubType=None,
        bouncedRecipients=[{"emailAddress": RECIPIENT}],
    )

    await ingest(runtime, undetermined, soft_bounces=ONE_BOUNCE)

    assert await suppressions(runtime) == {
        RECIPIENT: ("bounce", "1 bounce within 1 day, the last Undetermined")
    }


async def test_the_first_reason_stays(runtime: Runtime, clock: FakeClock) -> None:
    await add_request(runtime)
    await ingest(runtime, ses_message("Complaint", at=clock.now()))
    await ingest(runtime, ses_message("Bounce", at=clock.now()))

    assert await suppressions(runtime) == {RECIPIENT: ("complaint", "abuse")}
