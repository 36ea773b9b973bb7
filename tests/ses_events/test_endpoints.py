"""POST /v1/events/results: what Amazon SNS delivers, end to end, on SQLite and PostgreSQL.

Envelopes are signed with a self-made key whose certificate is seeded in the runtime's store
under a trusted SNS URL, so nothing is fetched; the real AWS-signed vectors run at the end.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ses_sender.composition import Runtime
from ses_sender.config import Settings
from ses_sender.cursor import encode_cursor
from ses_sender.delivery.emails import Sent
from ses_sender.delivery.repository import record_outcomes
from ses_sender.models import RequestStatus, ResultSource, Suppression
from ses_sender.ses_events.endpoints import MAX_SNS_BODY_BYTES
from ses_sender.ses_events.service import adopt_waiting_events, trust_topic, waiting_message_ids
from ses_sender.ses_events.sns import CertificateStore, SnsFetchError
from tests.support.clock import FakeClock
from tests.support.cursors import NOT_A_CURSOR, PAST_BIGINT, time_cursors
from tests.support.fakes import FakeFetch, RecordingFetcher
from tests.support.rows import (
    CLAIM_TOKEN,
    add_request,
    request_row,
    stored_payloads,
    stored_results,
)
from tests.support.ses_events import (
    RECIPIENT,
    SES_MESSAGE_ID,
    TOPIC_ARN,
    ses_message,
    ses_occurred_at,
)
from tests.support.settings import make_settings
from tests.support.signed_sns import (
    CERT_URL,
    PATH,
    SUBSCRIBE_URL,
    Publisher,
    as_body,
    earlier,
    events_runtime,
    post,
    sns_client,
)
from tests.support.signing import KeyPair, self_signed
from tests.support.sns_vectors import VECTOR_FILES, load_vector

NOT_VERIFIED_YET = "SNS message not verified yet: try again later"
OTHER_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:someone-elses-topic"
SUBSCRIPTION_SUCCEEDED = json.dumps(
    {
        "notificationType": "AmazonSnsSubscriptionSucceeded",
        "message": (
            f"You have successfully subscribed your Amazon SNS topic '{TOPIC_ARN}' to receive "
            "'Bounce' notifications from Amazon SES for identity 'example.com'."
        ),
    }
)
SUMMARY_FIELDS = (
    "delivered_at",
    "bounced_at",
    "bounce_type",
    "complained_at",
    "complaint_type",
    "rejected_at",
    "delayed_at",
    "first_opened_at",
    "open_count",
    "first_clicked_at",
    "click_count",
    "unsubscribed_at",
)


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def cert_fetch() -> FakeFetch:
    return FakeFetch()


@pytest.fixture
def certificates(signer: KeyPair, cert_fetch: FakeFetch) -> CertificateStore:
    store = CertificateStore(cert_fetch)
    store.seed(CERT_URL, signer.cert_pem)
    return store


@pytest.fixture
async def runtime(
    settings: Settings, clock: FakeClock, certificates: CertificateStore
) -> AsyncIterator[Runtime]:
    """The top-level runtime, but with the test certificate seeded in its store."""
    async with events_runtime(settings, clock, certificates) as runtime:
        yield runtime


@pytest.fixture
async def sns(runtime: Runtime, fetcher: RecordingFetcher) -> AsyncIterator[httpx.AsyncClient]:
    """The endpoint as SNS reaches it; SubscribeURLs go to the recording `fetcher`."""
    async with sns_client(runtime) as client:
        yield client


@pytest.fixture
def fetcher(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> RecordingFetcher:
    """The runtime's HttpsFetcher (used for SubscribeURLs), replaced by a recording fake."""
    fake = RecordingFetcher()
    monkeypatch.setattr(runtime, "fetcher", fake)
    return fake


@pytest.fixture
def publisher(signer: KeyPair, clock: FakeClock) -> Publisher:
    return Publisher(signer.key, clock)


@pytest.fixture(scope="session")
def impostor() -> KeyPair:
    """A key SNS never used: its signatures must not verify against the seeded certificate."""
    return self_signed()


async def summary_is_empty(runtime: Runtime, request_id: int) -> None:
    row = await request_row(runtime, request_id)
    assert {name: getattr(row, name) for name in SUMMARY_FIELDS} == {
        name: (0 if name.endswith("_count") else None) for name in SUMMARY_FIELDS
    }


async def suppressed(runtime: Runtime) -> list[str]:
    async with runtime.sessionmaker() as session:
        return list(await session.scalars(select(Suppression.email)))


async def untouched(runtime: Runtime, request_id: int) -> None:
    """Nothing was stored and the request's summary is as it was created."""
    assert await stored_results(runtime) == []
    await summary_is_empty(runtime, request_id)


# -- a notification for a known request -----------------------------------------------------


async def test_delivery_with_our_tag_is_stored_and_applied(
    sns: httpx.AsyncClient,
    runtime: Runtime,
    publisher: Publisher,
    clock: FakeClock,
    cert_fetch: FakeFetch,
) -> None:
    request_id = await add_request(runtime)
    message = ses_message("Delivery", at=earlier(clock), request_id=request_id)
    envelope = publisher.notification(message)

    response = await post(sns, envelope)

    assert response.status_code == 200
    assert response.json() == {"message": "ok"}
    [result] = await stored_results(runtime)
    assert result.request_id == request_id
    assert result.status == "Delivery"
    assert result.source == ResultSource.SES
    assert result.sns_message_id == envelope["MessageId"]
    assert result.ses_message_id == SES_MESSAGE_ID
    assert result.recipient == RECIPIENT
    assert result.occurred_at == earlier(clock)
    # The signed Message, byte for byte, once.
    assert await stored_payloads(runtime) == {envelope["MessageId"]: message}
    assert result.created_at == clock.now()
    row = await request_row(runtime, request_id)
    assert row.delivered_at == earlier(clock)
    assert row.bounced_at is None
    assert row.status == RequestStatus.SENT
    assert cert_fetch.calls == []  # the seeded certificate was used


@pytest.mark.parametrize("version", ["1", "2"])
async def test_both_signature_versions_are_accepted(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock, version: str
) -> None:
    request_id = await add_request(runtime)
    message = ses_message("Delivery", at=earlier(clock), request_id=request_id)

    response = await post(sns, publisher.notification(message, version=version))

    assert response.json() == {"message": "ok"}
    assert (await request_row(runtime, request_id)).delivered_at == earlier(clock)


async def test_tag_finds_a_request_whose_send_is_not_recorded_yet(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    # Claimed and sent, but the worker has not written the message id yet.
    request_id = await add_request(runtime, message_id=None, status=RequestStatus.PROCESSING)
    message = ses_message("Delivery", at=earlier(clock), request_id=request_id)

    response = await post(sns, publisher.notification(message))

    assert response.json() == {"message": "ok"}
    [result] = await stored_results(runtime)
    assert result.request_id == request_id
    assert (await request_row(runtime, request_id)).delivered_at == earlier(clock)


async def test_the_same_sns_message_twice_is_stored_once(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)
    envelope = publisher.notification(
        ses_message("Delivery", at=earlier(clock), request_id=request_id)
    )
    assert (await post(sns, envelope)).json() == {"message": "ok"}
    clock.advance(20)  # SNS retries 20 s later with the same message

    response = await post(sns, envelope)

    assert response.status_code == 200
    assert response.json() == {"message": "duplicate"}
    [result] = await stored_results(runtime)
    assert result.sns_message_id == envelope["MessageId"]
    assert (await request_row(runtime, request_id)).delivered_at == earlier(clock, 22)


async def test_the_same_sns_message_at_once_is_stored_once(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)
    envelope = publisher.notification(
        ses_message("Delivery", at=earlier(clock), request_id=request_id)
    )

    responses = await asyncio.gather(*(post(sns, envelope) for _ in range(3)))

    assert sorted(r.json()["message"] for r in responses) == ["duplicate", "duplicate", "ok"]
    assert len(await stored_results(runtime)) == 1


async def test_the_same_event_in_another_sns_message_is_another_row(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    # SNS dedupes nothing across messages; SES may publish one event to two topics.
    request_id = await add_request(runtime)
    message = ses_message("Delivery", at=earlier(clock), request_id=request_id)

    for _ in range(2):
        assert (await post(sns, publisher.notification(message))).json() == {"message": "ok"}

    assert len(await stored_results(runtime)) == 2
    assert (await request_row(runtime, request_id)).delivered_at == earlier(clock)


async def test_identity_bounce_is_matched_by_the_ses_message_id(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    await add_request(runtime, message_id="someone-else-000000", to="other@example.net")
    request_id = await add_request(runtime)
    message = ses_message("Bounce", at=earlier(clock), identity=True)

    response = await post(sns, publisher.notification(message, subject=None))

    assert response.json() == {"message": "ok"}
    [result] = await stored_results(runtime)
    assert (result.request_id, result.status) == (request_id, "Bounce")
    assert result.recipient == RECIPIENT
    row = await request_row(runtime, request_id)
    assert row.bounced_at == earlier(clock)
    assert row.bounce_type == "Permanent/General"
    assert row.delivered_at is None


async def test_identity_complaint(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)
    message = ses_message("Complaint", at=earlier(clock), identity=True)

    response = await post(sns, publisher.notification(message, subject=None))

    assert response.json() == {"message": "ok"}
    [result] = await stored_results(runtime)
    assert (result.request_id, result.status) == (request_id, "Complaint")
    row = await request_row(runtime, request_id)
    assert row.complained_at == earlier(clock)
    assert row.complaint_type == "abuse"


async def test_identity_delivery(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)
    message = ses_message("Delivery", at=earlier(clock), identity=True)

    assert (await post(sns, publisher.notification(message, subject=None))).status_code == 200

    assert (await request_row(runtime, request_id)).delivered_at == earlier(clock)


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("Reject", "rejected_at"),
        ("DeliveryDelay", "delayed_at"),
        ("Bounce", "bounced_at"),
        ("Complaint", "complained_at"),
    ],
)
async def test_event_publishing_kinds_set_their_summary_time(
    sns: httpx.AsyncClient,
    runtime: Runtime,
    publisher: Publisher,
    clock: FakeClock,
    kind: str,
    field: str,
) -> None:
    request_id = await add_request(runtime)
    message = ses_message(kind, at=earlier(clock), request_id=request_id)

    response = await post(sns, publisher.notification(message))

    assert response.json() == {"message": "ok"}
    [result] = await stored_results(runtime)
    assert (result.request_id, result.status) == (request_id, kind)
    # Reject carries no time of its own: it is the send's time.
    assert result.occurred_at == ses_occurred_at(message)
    row = await request_row(runtime, request_id)
    assert getattr(row, field) == ses_occurred_at(message)
    others = [name for name in SUMMARY_FIELDS if name.endswith("_at") and name != field]
    assert all(getattr(row, name) is None for name in others)


@pytest.mark.parametrize(("kind", "status"), [("Open", "SesOpen"), ("Click", "SesClick")])
async def test_ses_open_and_click_are_stored_apart_from_our_tracking(
    sns: httpx.AsyncClient,
    runtime: Runtime,
    publisher: Publisher,
    clock: FakeClock,
    kind: str,
    status: str,
) -> None:
    request_id = await add_request(runtime)
    message = ses_message(kind, at=earlier(clock), request_id=request_id)

    response = await post(sns, publisher.notification(message))

    assert response.json() == {"message": "ok"}
    [result] = await stored_results(runtime)
    assert (result.request_id, result.status, result.source) == (request_id, status, "ses")
    # Our pixel's counters are ours: SES's own tracking does not add to them.
    await summary_is_empty(runtime, request_id)


@pytest.mark.parametrize("kind", ["Send", "Rendering Failure"])
async def test_events_without_a_summary_field_are_only_stored(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock, kind: str
) -> None:
    request_id = await add_request(runtime)
    message = ses_message(kind, at=earlier(clock), request_id=request_id)

    response = await post(sns, publisher.notification(message))

    assert response.json() == {"message": "ok"}
    [result] = await stored_results(runtime)
    assert (result.request_id, result.status) == (request_id, kind.replace(" ", ""))
    await summary_is_empty(runtime, request_id)


# -- an event that arrives before its send is recorded --------------------------------------


async def test_event_before_the_send_is_recorded_waits_then_is_adopted(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    # The worker has sent the email but not yet written down the SES message id.
    request_id = await add_request(runtime, message_id=None, status=RequestStatus.PROCESSING)
    bounce = ses_message("Bounce", at=earlier(clock, 1), identity=True)
    delivery = ses_message("Delivery", at=earlier(clock, 3), identity=True)

    for message in (delivery, bounce):
        response = await post(sns, publisher.notification(message, subject=None))
        assert response.json() == {"message": "ok"}

    waiting = await stored_results(runtime)
    assert [(r.request_id, r.status) for r in waiting] == [(None, "Delivery"), (None, "Bounce")]
    await summary_is_empty(runtime, request_id)

    # What the worker's `_flush_outcomes` does, in one transaction.
    sent = Sent(request_id, SES_MESSAGE_ID, clock.now(), CLAIM_TOKEN)
    async with runtime.sessionmaker() as session, session.begin():
        await record_outcomes(session, [sent], now=clock.now())
        assert await waiting_message_ids(session, [SES_MESSAGE_ID]) == [SES_MESSAGE_ID]
        await adopt_waiting_events(
            session,
            request_id,
            SES_MESSAGE_ID,
            soft_bounces=runtime.soft_bounces,
            now=runtime.clock.now(),
        )

    adopted = await stored_results(runtime)
    assert [(r.request_id, r.status) for r in adopted] == [
        (request_id, "Delivery"),
        (request_id, "Bounce"),
    ]
    row = await request_row(runtime, request_id)
    assert (row.status, row.message_id) == (RequestStatus.SENT, SES_MESSAGE_ID)
    assert row.delivered_at == earlier(clock, 3)
    assert row.bounced_at == earlier(clock, 1)
    assert row.bounce_type == "Permanent/General"

    # Later events find the request at once.
    complaint = ses_message("Complaint", at=clock.now(), identity=True)
    assert (await post(sns, publisher.notification(complaint, subject=None))).status_code == 200
    assert (await stored_results(runtime))[-1].request_id == request_id
    assert (await request_row(runtime, request_id)).complained_at == clock.now()


async def test_adoption_leaves_other_messages_waiting(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    request_id = await add_request(runtime, message_id=None, status=RequestStatus.PROCESSING)
    for ses_id in (SES_MESSAGE_ID, "not-ours-yet-000000"):
        message = ses_message("Delivery", at=earlier(clock), ses_message_id=ses_id, identity=True)
        assert (await post(sns, publisher.notification(message))).status_code == 200

    async with runtime.sessionmaker() as session, session.begin():
        await record_outcomes(
            session, [Sent(request_id, SES_MESSAGE_ID, clock.now(), CLAIM_TOKEN)], now=clock.now()
        )
        await adopt_waiting_events(
            session,
            request_id,
            SES_MESSAGE_ID,
            soft_bounces=runtime.soft_bounces,
            now=runtime.clock.now(),
        )

    results = {r.ses_message_id: r.request_id for r in await stored_results(runtime)}
    assert results == {SES_MESSAGE_ID: request_id, "not-ours-yet-000000": None}


# -- forged, stale or malformed: 400 and nothing stored -------------------------------------


def _tampered_message(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    envelope = p.notification(message)
    return as_body({**envelope, "Message": message.replace("Delivery", "Bounce", 1)})


def _tampered_message_id(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    return as_body({**p.notification(message), "MessageId": str(uuid.uuid4())})


def _wrong_key(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    return as_body(replace(p, key=impostor.key).notification(message))


def _untrusted_cert_url(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    forged = replace(p, key=impostor.key, cert_url="https://evil.com/SimpleNotificationService.pem")
    return as_body(forged.notification(message))


def _s3_cert_url(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    # Anyone can host a .pem on a bucket subdomain of amazonaws.com (django-ses's CVE).
    url = "https://sns-bucket.s3.amazonaws.com/SimpleNotificationService-x.pem"
    return as_body(replace(p, key=impostor.key, cert_url=url).notification(message))


def _stale(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    return as_body(p.notification(message, sent_at=p.clock.now() - timedelta(hours=2)))


def _future(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    return as_body(p.notification(message, sent_at=p.clock.now() + timedelta(hours=1)))


def _version_3(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    return as_body({**p.notification(message), "SignatureVersion": "3"})


def _no_signature(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    envelope = p.notification(message)
    return as_body(
        {k: v for k, v in envelope.items() if k not in ("Signature", "SignatureVersion")}
    )


def _raw_ses_json(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    # What raw message delivery would POST: the SES event itself, unsigned.
    return message.encode("utf-8")


def _not_json(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    return b"Type=Notification&Message=hello"


def _not_utf8(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    return as_body(p.notification(message)).replace(b"Delivery", b"Deliv\xffry", 1)


def _json_array(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    return as_body(p.notification(message)).join([b"[", b"]"])


def _garbled_signature(p: Publisher, message: str, impostor: KeyPair) -> bytes:
    return as_body({**p.notification(message), "Signature": "not base64!"})


Forgery = Callable[[Publisher, str, KeyPair], bytes]

FORGERIES = [
    pytest.param(_tampered_message, "signature does not match", id="tampered-message"),
    pytest.param(_tampered_message_id, "signature does not match", id="tampered-message-id"),
    pytest.param(_wrong_key, "signature does not match", id="wrong-signature"),
    pytest.param(
        _untrusted_cert_url,
        "SigningCertURL is not an Amazon SNS certificate URL",
        id="untrusted-cert-url",
    ),
    pytest.param(
        _s3_cert_url, "SigningCertURL is not an Amazon SNS certificate URL", id="s3-cert-url"
    ),
    pytest.param(_stale, "Timestamp is too old", id="stale-2h"),
    pytest.param(_future, "Timestamp is in the future", id="future-1h"),
    pytest.param(_version_3, "SignatureVersion is neither 1 nor 2", id="signature-version-3"),
    pytest.param(_no_signature, "Notification without SignatureVersion", id="unsigned-envelope"),
    pytest.param(_raw_ses_json, "Type is not a known SNS message type", id="unsigned-plain-json"),
    pytest.param(_not_json, "body is not UTF-8 JSON", id="not-json"),
    pytest.param(_not_utf8, "body is not UTF-8 JSON", id="not-utf8"),
    pytest.param(_json_array, "body is not a JSON object", id="json-array"),
    pytest.param(_garbled_signature, "Signature is not base64", id="garbled-signature"),
]


@pytest.mark.parametrize(("forge", "reason"), FORGERIES)
async def test_forged_or_stale_messages_are_rejected_and_not_stored(
    sns: httpx.AsyncClient,
    runtime: Runtime,
    publisher: Publisher,
    clock: FakeClock,
    impostor: KeyPair,
    cert_fetch: FakeFetch,
    forge: Forgery,
    reason: str,
) -> None:
    request_id = await add_request(runtime)
    message = ses_message("Delivery", at=earlier(clock), request_id=request_id)

    response = await post(sns, forge(publisher, message, impostor))

    assert response.status_code == 400
    assert response.json()["error"] == f"SNS message rejected: {reason}"
    assert response.json()["path"] == PATH
    await untouched(runtime, request_id)
    assert cert_fetch.calls == []  # nothing untrusted is ever fetched


# -- only our own topics' messages count ----------------------------------------------------


async def test_messages_from_any_topic_named_in_sns_topic_arns_count(
    database_url: str,
    tmp_path: Path,
    clock: FakeClock,
    certificates: CertificateStore,
    publisher: Publisher,
    signer: KeyPair,
) -> None:
    settings = make_settings(
        database_url,
        OUTBOX_DIR=str(tmp_path / "outbox"),
        SNS_TOPIC_ARNS=f"{TOPIC_ARN}, arn:aws:sns:eu-west-1:123456789012:ses-events-eu",
    )
    async with events_runtime(settings, clock, certificates) as runtime, sns_client(runtime) as sns:
        request_id = await add_request(runtime)
        message = ses_message("Delivery", at=earlier(clock), request_id=request_id)

        accepted = await post(sns, publisher.notification(message))
        assert accepted.json() == {"message": "ok"}
        eu_cert_url = CERT_URL.replace("us-east-1", "eu-west-1")
        certificates.seed(eu_cert_url, signer.cert_pem)
        eu = replace(
            publisher,
            topic_arn="arn:aws:sns:eu-west-1:123456789012:ses-events-eu",
            cert_url=eu_cert_url,
        )
        assert (await post(sns, eu.notification(message))).json() == {"message": "ok"}
        assert len(await stored_results(runtime)) == 2


async def test_a_complaint_from_another_accounts_topic_changes_nothing(
    sns: httpx.AsyncClient,
    runtime: Runtime,
    publisher: Publisher,
    clock: FakeClock,
    cert_fetch: FakeFetch,
    fetcher: RecordingFetcher,
) -> None:
    """Anyone can subscribe their own topic to our endpoint: AWS signs it all alike."""
    request_id = await add_request(runtime)
    message = ses_message("Complaint", at=earlier(clock), request_id=request_id)
    foreign = replace(publisher, topic_arn=OTHER_TOPIC_ARN)
    cert_fetch.calls.clear()

    for envelope in (foreign.confirmation(), foreign.notification(message)):
        rejected = await post(sns, envelope)

        assert rejected.status_code == 400
        assert rejected.json()["error"] == (
            "SNS message rejected: TopicArn is not a topic of ours (setup-aws records the "
            "topic it wires; SNS_TOPIC_ARNS names others)"
        )
    assert fetcher.calls == []  # the SubscribeURL is never fetched
    assert cert_fetch.calls == []  # nor a certificate for it
    await untouched(runtime, request_id)
    assert await suppressed(runtime) == []


async def test_with_no_topic_trusted_every_message_is_refused(
    database_url: str,
    tmp_path: Path,
    clock: FakeClock,
    certificates: CertificateStore,
    publisher: Publisher,
) -> None:
    settings = make_settings(database_url, OUTBOX_DIR=str(tmp_path / "outbox"), SNS_TOPIC_ARNS="")
    async with events_runtime(settings, clock, certificates) as runtime, sns_client(runtime) as sns:
        request_id = await add_request(runtime)
        message = ses_message("Delivery", at=earlier(clock), request_id=request_id)
        for envelope in (publisher.confirmation(), publisher.notification(message)):
            response = await post(sns, envelope)
            assert response.status_code == 400
            assert "TopicArn is not a topic of ours" in response.json()["error"]
        await untouched(runtime, request_id)


async def test_a_topic_setup_aws_records_counts_without_a_restart(
    database_url: str,
    tmp_path: Path,
    clock: FakeClock,
    certificates: CertificateStore,
    publisher: Publisher,
) -> None:
    settings = make_settings(database_url, OUTBOX_DIR=str(tmp_path / "outbox"), SNS_TOPIC_ARNS="")
    async with events_runtime(settings, clock, certificates) as runtime, sns_client(runtime) as sns:
        async with runtime.sessionmaker() as session, session.begin():
            assert await trust_topic(session, TOPIC_ARN, now=clock.now())
            assert not await trust_topic(session, TOPIC_ARN, now=clock.now())  # once

        response = await post(
            sns, publisher.notification(ses_message("Delivery", at=earlier(clock)))
        )

        assert response.json() == {"message": "ok"}


async def test_a_complaint_about_an_address_we_never_mailed_is_kept_for_review(
    sns: httpx.AsyncClient,
    client: httpx.AsyncClient,
    runtime: Runtime,
    publisher: Publisher,
    clock: FakeClock,
) -> None:
    stranger = "stranger@example.net"
    complaint = ses_message("Complaint", at=earlier(clock), recipient=stranger, identity=True)

    assert (await post(sns, publisher.notification(complaint))).json() == {"message": "ok"}

    assert await suppressed(runtime) == []
    listed = await client.get("/v1/events/unmatched")
    assert listed.status_code == 200
    [event] = listed.json()["events"]
    assert (event["type"], event["recipient"]) == ("Complaint", stranger)
    assert event["sesMessageId"] == SES_MESSAGE_ID
    assert listed.json()["nextCursor"] is None


@pytest.mark.parametrize("recipient", ["a<", "x:y <"])
async def test_a_complaint_about_an_address_the_header_parser_fails_on_is_kept_for_review(
    sns: httpx.AsyncClient,
    client: httpx.AsyncClient,
    runtime: Runtime,
    publisher: Publisher,
    clock: FakeClock,
    recipient: str,
) -> None:
    complaint = ses_message("Complaint", at=earlier(clock), recipient=recipient, identity=True)

    assert (await post(sns, publisher.notification(complaint))).json() == {"message": "ok"}

    assert await suppressed(runtime) == []
    [event] = (await client.get("/v1/events/unmatched")).json()["events"]
    assert event["recipient"] == recipient


async def test_an_event_naming_more_recipients_than_ses_mail_has_is_refused(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    named = [{"emailAddress": f"r{index}@example.net"} for index in range(51)]
    complaint = ses_message(
        "Complaint", at=earlier(clock), identity=True, complainedRecipients=named
    )

    response = await post(sns, publisher.notification(complaint))

    assert response.status_code == 400
    assert response.json()["error"] == (
        "Message: not an SES event: names 51 recipients; SES mail has at most 50"
    )
    assert await stored_results(runtime) == []


def _with_ses_message_id(ses_message_id: str) -> Callable[[FakeClock, int], str]:
    def message(clock: FakeClock, request_id: int) -> str:
        return ses_message(
            "Delivery", at=earlier(clock), request_id=request_id, ses_message_id=ses_message_id
        )

    return message


def _delivered_at(timestamp: str) -> Callable[[FakeClock, int], str]:
    def message(clock: FakeClock, request_id: int) -> str:
        return ses_message(
            "Delivery", at=earlier(clock), request_id=request_id, timestamp=timestamp
        )

    return message


def _bounced(address: str) -> Callable[[FakeClock, int], str]:
    def message(clock: FakeClock, request_id: int) -> str:
        bounced = [{"emailAddress": address}]
        return ses_message(
            "Bounce", at=earlier(clock), request_id=request_id, bouncedRecipients=bounced
        )

    return message


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (_with_ses_message_id("m\x00"), "Message.mail.messageId holds the NUL character"),
        (
            _bounced("a\x00@example.net"),
            "Message.bounce.bouncedRecipients[0].emailAddress holds the NUL character",
        ),
        (_with_ses_message_id("m" * 256), "mail.messageId is longer than 255 characters"),
        (_delivered_at("0001-01-01T00:00:00+14:00"), "delivery.timestamp is out of range"),
        (_delivered_at("9999-12-31T23:59:59-14:00"), "delivery.timestamp is out of range"),
    ],
    ids=["nul-message-id", "nul-recipient", "long-message-id", "before-year-1", "after-9999"],
)
async def test_an_event_no_database_could_store_is_refused_for_good(
    sns: httpx.AsyncClient,
    runtime: Runtime,
    publisher: Publisher,
    clock: FakeClock,
    message: Callable[[FakeClock, int], str],
    error: str,
) -> None:
    # 400, not 503: SES never sends such an event, and SNS retries a 5xx for days.
    request_id = await add_request(runtime)

    response = await post(sns, publisher.notification(message(clock, request_id)))

    assert response.status_code == 400
    assert response.json()["error"] == f"Message: not an SES event: {error}"
    await untouched(runtime, request_id)


@pytest.mark.parametrize(
    ("message_id", "error"),
    [
        ("m\x00", "MessageId holds the NUL character"),
        ("m" * 256, "MessageId is longer than 255 characters"),
    ],
    ids=["nul", "long"],
)
async def test_an_sns_message_id_no_database_could_store_is_refused_for_good(
    sns: httpx.AsyncClient,
    runtime: Runtime,
    publisher: Publisher,
    clock: FakeClock,
    message_id: str,
    error: str,
) -> None:
    request_id = await add_request(runtime)
    message = ses_message("Delivery", at=earlier(clock), request_id=request_id)

    response = await post(sns, publisher.notification(message, MessageId=message_id))

    assert response.status_code == 400
    assert response.json()["error"] == f"SNS message rejected: {error}"
    await untouched(runtime, request_id)


async def test_ids_as_long_as_their_columns_are_stored(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)
    message = ses_message(
        "Delivery", at=earlier(clock), request_id=request_id, ses_message_id="m" * 255
    )

    response = await post(sns, publisher.notification(message, MessageId="s" * 255))

    assert response.status_code == 200
    [stored] = await stored_results(runtime)
    assert (stored.sns_message_id, stored.ses_message_id) == ("s" * 255, "m" * 255)


@pytest.mark.parametrize(
    "body",
    [
        b'{"Type": ' + b"1" * 5_000 + b"}",
        b'{"Type": ' + b"[" * 1_500 + b"]" * 1_500 + b"}",
        b'{"Type": "\\ud800"}',
    ],
    ids=["5000-digit integer", "nested 1500 deep", "lone surrogate"],
)
async def test_json_no_parser_should_take_is_refused(
    sns: httpx.AsyncClient, runtime: Runtime, body: bytes
) -> None:
    response = await post(sns, body)

    assert response.status_code == 400
    assert response.json()["error"] == "SNS message rejected: body is not UTF-8 JSON"
    assert await stored_results(runtime) == []


async def test_unmatched_events_page_newest_first(
    sns: httpx.AsyncClient,
    client: httpx.AsyncClient,
    publisher: Publisher,
    clock: FakeClock,
) -> None:
    for number in range(5):
        message = ses_message(
            "Bounce", at=earlier(clock), ses_message_id=f"m-{number}", identity=True
        )
        assert (await post(sns, publisher.notification(message))).status_code == 200
        clock.advance(1)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/events/unmatched", params=params)).json()
        seen += [event["sesMessageId"] for event in page["events"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"m-{number}" for number in reversed(range(5))]

    for bad in (
        "nope",
        encode_cursor("2026-01-05T10:00:00", "1"),
        encode_cursor("x", "y"),
        *time_cursors("1"),
        *(encode_cursor("2026-01-05T10:00:00+00:00", row_id) for row_id in PAST_BIGINT),
    ):
        refused = await client.get("/v1/events/unmatched", params={"cursor": bad})
        assert refused.status_code == 400
        assert refused.json()["error"] == NOT_A_CURSOR
    assert (await sns.get("/v1/events/unmatched")).status_code == 401  # no API key


# -- the certificate cannot be fetched: 503 so SNS retries -----------------------------------


@pytest.mark.parametrize(
    "error",
    [SnsFetchError("GET answered HTTP 503"), TimeoutError(), OSError("connection refused")],
    ids=["fetch-error", "timeout", "os-error"],
)
async def test_certificate_fetch_failure_asks_sns_to_retry(
    settings: Settings, clock: FakeClock, publisher: Publisher, error: Exception
) -> None:
    fetch = FakeFetch()
    fetch.error = error
    store = CertificateStore(fetch)  # not seeded
    async with events_runtime(settings, clock, store) as runtime, sns_client(runtime) as sns:
        request_id = await add_request(runtime)
        message = ses_message("Delivery", at=earlier(clock), request_id=request_id)

        response = await post(sns, publisher.notification(message))

        assert response.status_code == 503
        assert response.json()["error"] == NOT_VERIFIED_YET  # the cause is in our log only
        assert fetch.calls == [CERT_URL]
        await untouched(runtime, request_id)


async def test_fetched_certificate_is_used_when_not_seeded(
    settings: Settings, clock: FakeClock, publisher: Publisher, signer: KeyPair
) -> None:
    fetch = FakeFetch(signer.cert_pem)
    async with events_runtime(settings, clock, CertificateStore(fetch)) as runtime:
        async with sns_client(runtime) as sns:
            request_id = await add_request(runtime)
            for _ in range(2):
                message = ses_message("Delivery", at=earlier(clock), request_id=request_id)
                response = await post(sns, publisher.notification(message))
                assert response.json() == {"message": "ok"}
        assert fetch.calls == [CERT_URL]  # once, then cached


# -- subscription handshake -----------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
async def test_subscription_confirmation_gets_the_subscribe_url(
    sns: httpx.AsyncClient,
    runtime: Runtime,
    publisher: Publisher,
    fetcher: RecordingFetcher,
    version: str,
) -> None:
    response = await post(sns, publisher.confirmation(version=version))

    assert response.status_code == 200
    assert response.json() == {"message": "subscription confirmed"}
    assert fetcher.calls == [SUBSCRIBE_URL]
    assert await stored_results(runtime) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/?Action=ConfirmSubscription&Token=x",
        "https://evil.com/?Action=ConfirmSubscription&Token=x",
        "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x",
        "https://sns.us-east-1.amazonaws.com.evil.com/?Action=ConfirmSubscription",
        "https://sns.us-east-1.amazonaws.com@evil.com/?Action=ConfirmSubscription",
        "https://169.254.169.254/latest/meta-data/",
    ],
)
async def test_untrusted_subscribe_url_is_refused_without_a_get(
    sns: httpx.AsyncClient,
    runtime: Runtime,
    publisher: Publisher,
    fetcher: RecordingFetcher,
    url: str,
) -> None:
    # Signed by the (seeded) SNS key, so only the URL check can stop the GET.
    response = await post(sns, publisher.confirmation(subscribe_url=url))

    assert response.status_code == 400
    assert response.json()["error"] == (
        "SNS message rejected: SubscribeURL is not an Amazon SNS URL"
    )
    assert fetcher.calls == []
    assert await stored_results(runtime) == []


async def test_forged_subscription_confirmation_is_refused_without_a_get(
    sns: httpx.AsyncClient,
    publisher: Publisher,
    impostor: KeyPair,
    fetcher: RecordingFetcher,
) -> None:
    forged = replace(publisher, key=impostor.key).confirmation()

    response = await post(sns, forged)

    assert response.status_code == 400
    assert response.json()["error"] == "SNS message rejected: signature does not match"
    assert fetcher.calls == []


async def test_subscribe_url_fetch_failure_asks_sns_to_retry(
    sns: httpx.AsyncClient, publisher: Publisher, fetcher: RecordingFetcher
) -> None:
    fetcher.error = SnsFetchError("GET https://sns.us-east-1.amazonaws.com/ answered HTTP 500")

    response = await post(sns, publisher.confirmation())

    assert response.status_code == 503
    assert response.json()["error"] == NOT_VERIFIED_YET
    assert fetcher.calls == [SUBSCRIBE_URL]


async def test_unsubscribe_confirmation_is_noted_and_nothing_is_fetched(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, fetcher: RecordingFetcher
) -> None:
    response = await post(sns, publisher.confirmation("UnsubscribeConfirmation"))

    assert response.status_code == 200
    assert response.json() == {"message": "unsubscribe noted"}
    assert fetcher.calls == []
    assert await stored_results(runtime) == []


# -- verified, but not an SES event ---------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Hello world", "Message is not JSON"),
        ('["Delivery"]', "Message is not a JSON object"),
        (
            '{"eventType": "Purchase", "mail": {}}',
            "neither eventType nor notificationType is a known SES event type",
        ),
        ('{"eventType": "Delivery", "delivery": {}}', "mail is not a JSON object"),
    ],
)
async def test_verified_notification_that_is_not_an_ses_event_is_refused(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, message: str, reason: str
) -> None:
    response = await post(sns, publisher.notification(message, subject=None))

    assert response.status_code == 400
    assert response.json()["error"] == f"Message: not an SES event: {reason}"
    assert await stored_results(runtime) == []


async def test_ses_subscription_test_notification_is_ignored(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher
) -> None:
    response = await post(sns, publisher.notification(SUBSCRIPTION_SUCCEEDED, subject=None))

    assert response.status_code == 200
    assert response.json() == {"message": "ignored"}
    assert await stored_results(runtime) == []


# -- size limit -----------------------------------------------------------------------------


async def test_body_over_512_kib_is_refused(sns: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await post(sns, b" " * (MAX_SNS_BODY_BYTES + 1))

    assert response.status_code == 413
    assert str(MAX_SNS_BODY_BYTES) in response.json()["error"]
    assert await stored_results(runtime) == []


async def test_signed_body_at_the_limit_is_read(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)
    message = ses_message("Delivery", at=earlier(clock), request_id=request_id)
    body = as_body(publisher.notification(message))
    body += b" " * (MAX_SNS_BODY_BYTES - len(body))  # JSON allows trailing whitespace

    response = await post(sns, body)

    assert response.json() == {"message": "ok"}


# -- the route ------------------------------------------------------------------------------


async def test_the_route_needs_no_api_key_and_ignores_a_wrong_one(
    sns: httpx.AsyncClient, runtime: Runtime, publisher: Publisher, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)
    message = ses_message("Delivery", at=earlier(clock), request_id=request_id)

    response = await sns.post(
        PATH,
        content=as_body(publisher.notification(message)),
        headers={"content-type": "text/plain; charset=UTF-8", "x-api-key": "wrong"},
    )

    assert response.json() == {"message": "ok"}


async def test_the_signed_type_wins_over_the_sns_headers(
    sns: httpx.AsyncClient,
    runtime: Runtime,
    publisher: Publisher,
    clock: FakeClock,
    fetcher: RecordingFetcher,
) -> None:
    request_id = await add_request(runtime)
    message = ses_message("Delivery", at=earlier(clock), request_id=request_id)

    response = await sns.post(
        PATH,
        content=as_body(publisher.notification(message)),
        headers={
            "content-type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": "SubscriptionConfirmation",
            "x-amz-sns-topic-arn": OTHER_TOPIC_ARN,
        },
    )

    assert response.json() == {"message": "ok"}
    assert fetcher.calls == []


# -- messages signed by AWS itself ----------------------------------------------------------

SES_VECTORS = {
    "ses-event-complaint-v1-with-subject.json": "Complaint",
    "ses-notification-bounce-v1-no-subject.json": "Bounce",
}


@asynccontextmanager
async def vector_runtime(
    database_url: str, tmp_path: Path, envelope: dict[str, Any], cert_pem: bytes
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient, FakeFetch]]:
    """A runtime whose clock reads a minute after the vector was sent, with the real cert."""
    fetch = FakeFetch()
    store = CertificateStore(fetch)
    store.seed(envelope["SigningCertURL"], cert_pem)
    clock = FakeClock(datetime.fromisoformat(envelope["Timestamp"]) + timedelta(minutes=1))
    settings = make_settings(
        database_url, OUTBOX_DIR=str(tmp_path / "outbox"), SNS_TOPIC_ARNS=envelope["TopicArn"]
    )
    async with events_runtime(settings, clock, store) as runtime, sns_client(runtime) as sns:
        yield runtime, sns, fetch


@pytest.mark.parametrize(("name", "kind"), SES_VECTORS.items())
async def test_real_aws_ses_vectors_are_kept_waiting(
    database_url: str,
    tmp_path: Path,
    vectors_dir: Path,
    vector_cert_pem: bytes,
    name: str,
    kind: str,
) -> None:
    envelope = load_vector(vectors_dir, name)
    async with vector_runtime(database_url, tmp_path, envelope, vector_cert_pem) as (
        runtime,
        sns,
        fetch,
    ):
        response = await post(sns, (vectors_dir / name).read_bytes())

        assert response.status_code == 200
        assert response.json() == {"message": "ok"}
        [result] = await stored_results(runtime)
        ses_message_id = json.loads(envelope["Message"])["mail"]["messageId"]
        assert result.request_id is None  # no such request here: kept for adoption
        assert result.status == kind
        assert result.sns_message_id == envelope["MessageId"]
        assert result.ses_message_id == ses_message_id
        assert result.recipient == f"{kind.lower()}@simulator.amazonses.com"
        assert await stored_payloads(runtime) == {envelope["MessageId"]: envelope["Message"]}
        assert fetch.calls == []

        again = await post(sns, (vectors_dir / name).read_bytes())
        assert again.json() == {"message": "duplicate"}


async def test_real_aws_bounce_vector_updates_its_request(
    database_url: str, tmp_path: Path, vectors_dir: Path, vector_cert_pem: bytes
) -> None:
    name = "ses-notification-bounce-v1-no-subject.json"
    envelope = load_vector(vectors_dir, name)
    ses_message_id = json.loads(envelope["Message"])["mail"]["messageId"]
    async with vector_runtime(database_url, tmp_path, envelope, vector_cert_pem) as (
        runtime,
        sns,
        _fetch,
    ):
        request_id = await add_request(
            runtime, message_id=ses_message_id, to="bounce@simulator.amazonses.com"
        )

        response = await post(sns, (vectors_dir / name).read_bytes())

        assert response.json() == {"message": "ok"}
        row = await request_row(runtime, request_id)
        assert row.bounced_at == datetime.fromisoformat("2022-04-01T21:24:49.000Z")
        assert row.bounce_type == "Permanent/General"


@pytest.mark.parametrize(
    "name", [name for name in VECTOR_FILES if name.startswith("plain-notification")]
)
async def test_real_aws_plain_notifications_are_not_ses_events(
    database_url: str, tmp_path: Path, vectors_dir: Path, vector_cert_pem: bytes, name: str
) -> None:
    envelope = load_vector(vectors_dir, name)
    async with vector_runtime(database_url, tmp_path, envelope, vector_cert_pem) as (
        runtime,
        sns,
        _fetch,
    ):
        response = await post(sns, (vectors_dir / name).read_bytes())

        assert response.status_code == 400
        assert response.json()["error"] == "Message: not an SES event: Message is not JSON"
        assert await stored_results(runtime) == []


@pytest.mark.parametrize("name", VECTOR_FILES)
async def test_real_aws_vectors_are_stale_today(
    sns: httpx.AsyncClient,
    runtime: Runtime,
    vectors_dir: Path,
    vector_cert_pem: bytes,
    certificates: CertificateStore,
    name: str,
) -> None:
    envelope = load_vector(vectors_dir, name)
    certificates.seed(envelope["SigningCertURL"], vector_cert_pem)

    response = await post(sns, (vectors_dir / name).read_bytes())

    assert response.status_code == 400
    assert response.json()["error"] == "SNS message rejected: Timestamp is too old"
    assert await stored_results(runtime) == []


async def test_oversized_body_is_refused_without_reading_it_all(
    sns: httpx.AsyncClient, runtime: Runtime
) -> None:
    chunk = b" " * (64 * 1024)
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(256):  # 16 MiB, sent chunked: no Content-Length to go by
            sent.append(len(chunk))
            yield chunk

    response = await sns.post(
        PATH, content=endless(), headers={"content-type": "text/plain; charset=UTF-8"}
    )

    assert response.status_code == 413
    assert sum(sent) <= MAX_SNS_BODY_BYTES + len(chunk)
    assert await stored_results(runtime) == []


async def test_declared_oversized_body_is_refused_before_reading(
    sns: httpx.AsyncClient, runtime: Runtime
) -> None:
    sent: list[int] = []

    async def small() -> AsyncIterator[bytes]:
        sent.append(1)
        yield b"{}"

    response = await sns.post(
        PATH,
        content=small(),
        headers={
            "content-type": "text/plain; charset=UTF-8",
            "content-length": str(MAX_SNS_BODY_BYTES + 1),
        },
    )

    assert response.status_code == 413
    assert sent == []
