from __future__ import annotations

import asyncio
import json
import string
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ses_sender.ses_events.sns import (
    CertificateStore,
    HttpsFetcher,
    SnsFetchError,
    SnsMessage,
    SnsTransientError,
    SnsVerificationError,
    SnsVerifier,
    confirm_subscription,
    is_trusted_cert_url,
    is_trusted_sns_url,
    parse_envelope,
)
from ses_sender.ses_events.topics import TrustedTopics
from tests.support.clock import ManualClock
from tests.support.fakes import FakeFetch
from tests.support.https_server import LocalHttpsServer, TlsFiles
from tests.support.polling import wait_until
from tests.support.signing import KeyPair, self_signed, self_signed_ec, sign, tls_ca, tls_server
from tests.support.sns_vectors import VECTOR_FILES, load_vector

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"
CERT_FILE = "SimpleNotificationService-0123456789abcdef0123456789abcdef.pem"
CERT_URL = f"https://sns.us-east-1.amazonaws.com/{CERT_FILE}"
SUBSCRIBE_URL = (
    "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
    f"&TopicArn={TOPIC_ARN}&Token=2336412f37fb687f5d51e6e2425c464de"
)
SIGNED_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type", "Signature")

UNTRUSTED_CERT_URLS = [
    "http://sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com.evil.com/x.pem",
    "https://sns.us-east-1.amazonaws.com.cn.evil.com/x.pem",
    "https://evil.com/sns.us-east-1.amazonaws.com/x.pem",
    "https://s3.amazonaws.com/x.pem",
    "https://sns-bucket.s3.amazonaws.com/x.pem",
    "https://xsns.us-east-1.amazonaws.com/x.pem",
    "https://sns.amazonaws.com/x.pem",
    # Other names under amazonaws.com, some of which anyone can create (S3 buckets):
    "https://sns.s3.amazonaws.com/x.pem",
    "https://sns.s3-website.amazonaws.com/x.pem",
    "https://sns.execute-api.amazonaws.com/x.pem",
    "https://sns.us-east-1.elb.amazonaws.com/x.pem",
    "https://sns.x.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com.cn/x.pem",
    "https://sns.cn-north-1.amazonaws.com/x.pem",
    "https://sns.us-east-123.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com./x.pem",
    # Other spellings of a trusted URL: each would spend a fetch of the new-URL budget.
    f"https://sns.us-east-1.amazonaws.com:443/{CERT_FILE}",
    f"https://SNS.US-EAST-1.AMAZONAWS.COM/{CERT_FILE}",
    f"https://sns.US-east-1.amazonaws.com/{CERT_FILE}",
    f"HTTPS://sns.us-east-1.amazonaws.com/{CERT_FILE}",
    f"https://sns.us-east-1.amazonaws.com./{CERT_FILE}",
    f"https://@sns.us-east-1.amazonaws.com/{CERT_FILE}",
    f"https://sns.us-east-1.amazonaws.com/{CERT_FILE}?",
    f"https://sns.us-east-1.amazonaws.com/{CERT_FILE}#",
    f"https://sns.us-east-1.amazonaws.com/{CERT_FILE}?x=1",
    f"https://sns.us-east-1.amazonaws.com/./{CERT_FILE}",
    "https://sns.us-east-1.amazonaws.com%2eevil.com/x.pem",
    "https://sns.us-east-1.amazonaws.com/x.txt",
    "https://sns.us-east-1.amazonaws.com/x.pem",
    # A region-shaped name that is no region, and SNS's other names for a region:
    f"https://sns.xx-fake-1.amazonaws.com/{CERT_FILE}",
    f"https://sns.us-gov-fake-1.amazonaws.com/{CERT_FILE}",
    f"https://sns-fips.us-east-1.amazonaws.com/{CERT_FILE}",
    f"https://sns.us-east-1.api.aws/{CERT_FILE}",
    f"https://sns.us-isob-east-1.sc2s.sgov.gov/{CERT_FILE}",
    # Not the certificate file name AWS uses:
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789ABCDEF0123456789ABCDEF.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef0123456789abcdef0.pem",
    f"https://sns.us-east-1.amazonaws.com/x/{CERT_FILE}",
    f"https://sns.us-east-1.amazonaws.com/{CERT_FILE}/",
    f"https://sns.us-east-1.amazonaws.com/{CERT_FILE.replace('-', '_')}",
    "https://sns.us-east-1.amazonaws.com/x.pem?.pem",
    "https://sns.us-east-1.amazonaws.com/x.pem#fragment",
    "https://sns.us-east-1.amazonaws.com@evil.com/x.pem",
    "https://evil.com@sns.us-east-1.amazonaws.com/x.pem",
    "https://user:password@sns.us-east-1.amazonaws.com/x.pem",
    "https://@sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com\\@evil.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:8443/x.pem",
    "https://sns.us-east-1.amazonaws.com:443@evil.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:port/x.pem",
    "https://sns.us-east-1.amazonaws.com/x.pem\n",
    "https://sns.us-east-1.amazonaws\t.com/x.pem",
    " https://sns.us-east-1.amazonaws.com/x.pem",
    "//sns.us-east-1.amazonaws.com/x.pem",
    "https://127.0.0.1/x.pem",
    "https://[::1]/x.pem",
    "",
]


def trusting(*topic_arns: str) -> TrustedTopics:
    """Topics trusted by SNS_TOPIC_ARNS, none recorded."""

    async def none_recorded() -> frozenset[str]:
        return frozenset()

    return TrustedTopics(topic_arns, none_recorded)


def notification(**fields: str) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "97903a0c-8818-5442-94b2-60b0c63d3da0",
        "TopicArn": TOPIC_ARN,
        "Subject": "Amazon SES Email Event Notification",
        "Message": '{"eventType":"Send","mail":{}}\n',
        "Timestamp": "2026-01-05T09:59:58.713Z",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        **fields,
    }


def confirmation(**fields: str) -> dict[str, Any]:
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2425c464de",
        "TopicArn": TOPIC_ARN,
        "Message": f"You have chosen to subscribe to the topic {TOPIC_ARN}.",
        "SubscribeURL": SUBSCRIBE_URL,
        "Timestamp": "2026-01-05T09:59:58.713Z",
        "SigningCertURL": CERT_URL,
        **fields,
    }


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def without(envelope: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in envelope.items() if k != key}


def single_character_changes(text: str) -> Iterator[str]:
    for index, character in enumerate(text):
        yield text[:index] + _another(character) + text[index + 1 :]


def _another(character: str) -> str:
    # Same character class where possible, so that the change stays well-formed.
    for alphabet in (string.digits, string.ascii_lowercase, string.ascii_uppercase):
        if character in alphabet:
            return alphabet[(alphabet.index(character) + 1) % len(alphabet)]
    return "y" if character == "x" else "x"


@pytest.fixture
def fetch(signer: KeyPair) -> FakeFetch:
    return FakeFetch(signer.cert_pem)


@pytest.fixture
def verifier(fetch: FakeFetch) -> SnsVerifier:
    return SnsVerifier(CertificateStore(fetch), clock=at(NOW), topics=trusting(TOPIC_ARN))


async def rejected(verifier: SnsVerifier, envelope: dict[str, Any]) -> str:
    with pytest.raises(SnsVerificationError) as caught:
        await verifier.verify(envelope)
    return caught.value.reason


class TestParseEnvelope:
    def test_text_plain_body(self, signer: KeyPair) -> None:
        envelope = sign(notification(Message="héllo\n"), signer.key)
        assert parse_envelope(json.dumps(envelope).encode()) == envelope

    @pytest.mark.parametrize(
        "body",
        [b"", b"not json", b"\xff\xfe{}", b"[]", b'"Notification"', b"null", b"{"],
    )
    def test_not_a_json_object(self, body: bytes) -> None:
        with pytest.raises(SnsVerificationError):
            parse_envelope(body)

    def test_absurd_nesting(self) -> None:
        with pytest.raises(SnsVerificationError):
            parse_envelope(b"[" * 100_000)

    @pytest.mark.parametrize("message_type", ["Nope", "notification", None, 1, ["Notification"]])
    def test_unknown_type(self, signer: KeyPair, message_type: object) -> None:
        envelope = {**sign(notification(), signer.key), "Type": message_type}
        with pytest.raises(SnsVerificationError, match="Type"):
            parse_envelope(json.dumps(envelope).encode())

    @pytest.mark.parametrize(
        "key",
        [
            "MessageId",
            "TopicArn",
            "Message",
            "Timestamp",
            "SignatureVersion",
            "Signature",
            "SigningCertURL",
        ],
    )
    def test_notification_without_required_key(self, signer: KeyPair, key: str) -> None:
        envelope = without(sign(notification(), signer.key), key)
        with pytest.raises(SnsVerificationError, match=key):
            parse_envelope(json.dumps(envelope).encode())

    @pytest.mark.parametrize(
        "message_type", ["SubscriptionConfirmation", "UnsubscribeConfirmation"]
    )
    @pytest.mark.parametrize("key", ["SubscribeURL", "Token", "Message", "SigningCertURL"])
    def test_confirmation_without_required_key(
        self, signer: KeyPair, message_type: str, key: str
    ) -> None:
        envelope = without(sign(confirmation(Type=message_type), signer.key), key)
        with pytest.raises(SnsVerificationError, match=key):
            parse_envelope(json.dumps(envelope).encode())

    def test_subject_and_unsubscribe_url_are_optional(self, signer: KeyPair) -> None:
        envelope = without(without(sign(notification(), signer.key), "Subject"), "UnsubscribeURL")
        assert parse_envelope(json.dumps(envelope).encode()) == envelope

    @pytest.mark.parametrize("value", [None, 1, ["a"], {"a": "b"}])
    def test_values_must_be_strings(self, signer: KeyPair, value: object) -> None:
        envelope = {**sign(notification(), signer.key), "MessageId": value}
        with pytest.raises(SnsVerificationError, match="MessageId"):
            parse_envelope(json.dumps(envelope).encode())

    def test_lambda_spellings_are_normalised(self, signer: KeyPair) -> None:
        envelope = sign(confirmation(), signer.key)
        lambda_style = {
            **without(without(envelope, "SigningCertURL"), "SubscribeURL"),
            "SigningCertUrl": envelope["SigningCertURL"],
            "SubscribeUrl": envelope["SubscribeURL"],
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        }
        parsed = parse_envelope(json.dumps(lambda_style).encode())
        assert parsed["SigningCertURL"] == envelope["SigningCertURL"]
        assert parsed["SubscribeURL"] == envelope["SubscribeURL"]
        assert parsed["UnsubscribeURL"] == lambda_style["UnsubscribeUrl"]
        assert "SigningCertUrl" not in parsed

    def test_conflicting_spellings_are_rejected(self, signer: KeyPair) -> None:
        envelope = {**sign(notification(), signer.key), "SigningCertUrl": "https://evil.com/x.pem"}
        with pytest.raises(SnsVerificationError, match="disagree"):
            parse_envelope(json.dumps(envelope).encode())

    def test_null_subject_means_absent(self, signer: KeyPair) -> None:
        # Lambda writes a missing Subject as null.
        envelope = {**sign(without(notification(), "Subject"), signer.key), "Subject": None}
        assert "Subject" not in parse_envelope(json.dumps(envelope).encode())


class TestTrustedUrls:
    @pytest.mark.parametrize(
        "url",
        [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem",
            "https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-01d088a6f77103d0fe307c0069e40ed6.pem",
            f"https://sns.cn-north-1.amazonaws.com.cn/{CERT_FILE}",
            f"https://sns.cn-northwest-1.amazonaws.com.cn/{CERT_FILE}",
            f"https://sns.us-gov-west-1.amazonaws.com/{CERT_FILE}",
            f"https://sns.ap-southeast-5.amazonaws.com/{CERT_FILE}",
            f"https://sns.il-central-1.amazonaws.com/{CERT_FILE}",
        ],
    )
    def test_trusted_cert_urls(self, url: str) -> None:
        assert is_trusted_cert_url(url)
        assert is_trusted_sns_url(url)

    @pytest.mark.parametrize("url", UNTRUSTED_CERT_URLS)
    def test_untrusted_cert_urls(self, url: str) -> None:
        assert not is_trusted_cert_url(url)

    def test_subscribe_url_needs_no_pem_path(self) -> None:
        assert is_trusted_sns_url(SUBSCRIBE_URL)
        assert not is_trusted_cert_url(SUBSCRIBE_URL)

    @pytest.mark.parametrize(
        "url",
        [
            "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
            "https://sns.us-east-1.amazonaws.com.evil.com/?Action=ConfirmSubscription",
            "https://evil.com/?sns.us-east-1.amazonaws.com",
            "https://user@sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
            "https://sns.us-east-1.amazonaws.com:8443/?Action=ConfirmSubscription",
            "https://127.0.0.1/?Action=ConfirmSubscription",
        ],
    )
    def test_untrusted_subscribe_urls(self, url: str) -> None:
        assert not is_trusted_sns_url(url)


class TestVerifyRealVectors:
    """Messages signed by AWS itself (tests/support/vectors/sns), with the certificate seeded."""

    @staticmethod
    def verifier_for(envelope: dict[str, Any], pem: bytes, fetch: FakeFetch) -> SnsVerifier:
        store = CertificateStore(fetch)
        store.seed(envelope["SigningCertURL"], pem)
        sent_at = datetime.fromisoformat(envelope["Timestamp"])
        return SnsVerifier(
            store,
            clock=at(sent_at + timedelta(minutes=1)),
            topics=trusting(envelope["TopicArn"]),
        )

    @pytest.mark.parametrize("name", VECTOR_FILES)
    async def test_verifies(self, vectors_dir: Path, vector_cert_pem: bytes, name: str) -> None:
        body = (vectors_dir / name).read_bytes()
        envelope = parse_envelope(body)
        fetch = FakeFetch()
        message = await self.verifier_for(envelope, vector_cert_pem, fetch).verify(envelope)

        assert message == SnsMessage(
            type="Notification",
            message_id=envelope["MessageId"],
            topic_arn=envelope["TopicArn"],
            message=envelope["Message"],
            timestamp=datetime.fromisoformat(envelope["Timestamp"]),
            subject=envelope.get("Subject"),
        )
        assert fetch.calls == []

    async def test_message_is_byte_exact(self, vectors_dir: Path, vector_cert_pem: bytes) -> None:
        envelope = load_vector(vectors_dir, "ses-event-complaint-v1-with-subject.json")
        message = await self.verifier_for(envelope, vector_cert_pem, FakeFetch()).verify(envelope)
        assert message.message.endswith("}\n")
        assert message.subject == "Amazon SES Email Event Notification"

    @pytest.mark.parametrize("field", SIGNED_FIELDS)
    async def test_any_single_character_change_is_rejected(
        self, vectors_dir: Path, vector_cert_pem: bytes, field: str
    ) -> None:
        changes = 0
        for name in VECTOR_FILES:
            envelope = load_vector(vectors_dir, name)
            if field not in envelope:
                continue
            verifier = self.verifier_for(envelope, vector_cert_pem, FakeFetch())
            for changed in single_character_changes(envelope[field]):
                await rejected(verifier, {**envelope, field: changed})
                changes += 1
        assert changes > 0

    async def test_changed_timestamp_fails_on_the_signature(
        self, vectors_dir: Path, vector_cert_pem: bytes
    ) -> None:
        # Still fresh and well-formed, so only the signature can catch it.
        envelope = load_vector(vectors_dir, "plain-notification-v2-sha256.json")
        verifier = self.verifier_for(envelope, vector_cert_pem, FakeFetch())
        changed = {**envelope, "Timestamp": "2022-07-28T21:24:08.325Z"}
        assert await rejected(verifier, changed) == "signature does not match"

    async def test_removing_subject_is_rejected(
        self, vectors_dir: Path, vector_cert_pem: bytes
    ) -> None:
        envelope = load_vector(vectors_dir, "ses-event-complaint-v1-with-subject.json")
        verifier = self.verifier_for(envelope, vector_cert_pem, FakeFetch())
        assert await rejected(verifier, without(envelope, "Subject")) == "signature does not match"
        empty = {**envelope, "Subject": ""}
        assert await rejected(verifier, empty) == "signature does not match"

    async def test_adding_subject_is_rejected(
        self, vectors_dir: Path, vector_cert_pem: bytes
    ) -> None:
        envelope = load_vector(vectors_dir, "ses-notification-bounce-v1-no-subject.json")
        verifier = self.verifier_for(envelope, vector_cert_pem, FakeFetch())
        for subject in ("", "Amazon SES Email Event Notification"):
            changed = {**envelope, "Subject": subject}
            assert await rejected(verifier, changed) == "signature does not match"

    async def test_swapped_signature_version_is_rejected(
        self, vectors_dir: Path, vector_cert_pem: bytes
    ) -> None:
        envelope = load_vector(vectors_dir, "plain-notification-v2-sha256.json")
        verifier = self.verifier_for(envelope, vector_cert_pem, FakeFetch())
        changed = {**envelope, "SignatureVersion": "1"}
        assert await rejected(verifier, changed) == "signature does not match"

    async def test_stale_against_todays_clock(
        self, vectors_dir: Path, vector_cert_pem: bytes
    ) -> None:
        envelope = load_vector(vectors_dir, "plain-notification-v1.json")
        store = CertificateStore(FakeFetch())
        store.seed(envelope["SigningCertURL"], vector_cert_pem)
        verifier = SnsVerifier(store, clock=at(NOW), topics=trusting(envelope["TopicArn"]))
        assert await rejected(verifier, envelope) == "Timestamp is too old"


class TestVerify:
    """Messages signed in the test with a self-made key, the way SNS signs them."""

    @pytest.mark.parametrize("version", ["1", "2"])
    async def test_notification(
        self, verifier: SnsVerifier, fetch: FakeFetch, signer: KeyPair, version: str
    ) -> None:
        envelope = sign(notification(), signer.key, version)
        message = await verifier.verify(envelope)
        assert message == SnsMessage(
            type="Notification",
            message_id=envelope["MessageId"],
            topic_arn=TOPIC_ARN,
            message=envelope["Message"],
            timestamp=datetime(2026, 1, 5, 9, 59, 58, 713000, tzinfo=UTC),
            subject="Amazon SES Email Event Notification",
        )
        assert fetch.calls == [CERT_URL]

    @pytest.mark.parametrize("version", ["1", "2"])
    @pytest.mark.parametrize(
        "message_type", ["SubscriptionConfirmation", "UnsubscribeConfirmation"]
    )
    async def test_confirmation(
        self, verifier: SnsVerifier, signer: KeyPair, version: str, message_type: str
    ) -> None:
        envelope = sign(confirmation(Type=message_type), signer.key, version)
        message = await verifier.verify(envelope)
        assert message.type == message_type
        assert message.subscribe_url == SUBSCRIBE_URL
        assert message.token == envelope["Token"]
        assert message.subject is None

    @pytest.mark.parametrize("version", ["1", "2"])
    async def test_without_subject(
        self, verifier: SnsVerifier, signer: KeyPair, version: str
    ) -> None:
        envelope = sign(without(notification(), "Subject"), signer.key, version)
        assert (await verifier.verify(envelope)).subject is None

    async def test_empty_subject_is_signed(self, verifier: SnsVerifier, signer: KeyPair) -> None:
        envelope = sign(notification(Subject=""), signer.key)
        assert (await verifier.verify(envelope)).subject == ""
        assert await rejected(verifier, without(envelope, "Subject")) == "signature does not match"

    async def test_null_subject_is_absent(self, verifier: SnsVerifier, signer: KeyPair) -> None:
        envelope = {**sign(without(notification(), "Subject"), signer.key), "Subject": None}
        assert (await verifier.verify(envelope)).subject is None

    async def test_utf8_message(self, verifier: SnsVerifier, signer: KeyPair) -> None:
        envelope = sign(notification(Message="Grüße\r\n\t✉ \u2028end"), signer.key)
        assert (await verifier.verify(envelope)).message == "Grüße\r\n\t✉ \u2028end"

    async def test_lambda_envelope(self, verifier: SnsVerifier, signer: KeyPair) -> None:
        envelope = sign(confirmation(), signer.key)
        lambda_style = {
            **without(without(envelope, "SigningCertURL"), "SubscribeURL"),
            "SigningCertUrl": CERT_URL,
            "SubscribeUrl": SUBSCRIBE_URL,
        }
        assert (await verifier.verify(lambda_style)).subscribe_url == SUBSCRIBE_URL

    @pytest.mark.parametrize("version", ["1", "2"])
    @pytest.mark.parametrize(
        "field", ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Signature"]
    )
    async def test_tampered_notification(
        self, verifier: SnsVerifier, signer: KeyPair, version: str, field: str
    ) -> None:
        envelope = sign(notification(), signer.key, version)
        original = envelope[field]
        changed = original[:-2] + _another(original[-2]) + original[-1]
        await rejected(verifier, {**envelope, field: changed})

    @pytest.mark.parametrize(
        "field", ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn"]
    )
    async def test_tampered_confirmation(
        self, verifier: SnsVerifier, signer: KeyPair, field: str
    ) -> None:
        envelope = sign(confirmation(), signer.key)
        original = envelope[field]
        changed = original[:-2] + _another(original[-2]) + original[-1]
        await rejected(verifier, {**envelope, field: changed})

    async def test_type_swapped_between_confirmations(
        self, verifier: SnsVerifier, signer: KeyPair
    ) -> None:
        envelope = sign(confirmation(), signer.key)
        changed = {**envelope, "Type": "UnsubscribeConfirmation"}
        assert await rejected(verifier, changed) == "signature does not match"

    async def test_signed_by_another_key(self, verifier: SnsVerifier) -> None:
        envelope = sign(notification(), self_signed().key)
        assert await rejected(verifier, envelope) == "signature does not match"

    async def test_unsigned_fields_are_not_exposed(
        self, verifier: SnsVerifier, signer: KeyPair
    ) -> None:
        envelope = sign(notification(), signer.key)
        smuggled = {**envelope, "SubscribeURL": "https://evil.com/", "Token": "t"}
        message = await verifier.verify(smuggled)
        assert message.subscribe_url is None
        assert message.token is None

    @pytest.mark.parametrize("version", ["", "3", "1 ", "01", "SHA256"])
    async def test_unsupported_signature_version(
        self, verifier: SnsVerifier, fetch: FakeFetch, signer: KeyPair, version: str
    ) -> None:
        envelope = {**sign(notification(), signer.key), "SignatureVersion": version}
        assert "SignatureVersion" in await rejected(verifier, envelope)
        assert fetch.calls == []

    @pytest.mark.parametrize(
        "signature", ["", "not base64!", "QUJD", "QUJDRA", "QUJDRA=", " QUJDRA==", "QUJDRA==\n"]
    )
    async def test_malformed_signature(
        self, verifier: SnsVerifier, signer: KeyPair, signature: str
    ) -> None:
        envelope = {**sign(notification(), signer.key), "Signature": signature}
        await rejected(verifier, envelope)

    async def test_non_canonical_base64_signature(
        self, verifier: SnsVerifier, signer: KeyPair
    ) -> None:
        # 256 bytes end in "==": the last data character has 4 padding bits; setting one of them
        # changes the text but not the decoded bytes.
        envelope = sign(notification(), signer.key)
        text = envelope["Signature"]
        alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
        last = alphabet[alphabet.index(text[-3]) ^ 1]
        changed = {**envelope, "Signature": text[:-3] + last + "=="}
        assert await rejected(verifier, changed) == "Signature is not canonical base64"

    @pytest.mark.parametrize("url", UNTRUSTED_CERT_URLS)
    async def test_untrusted_cert_url_is_never_fetched(
        self, verifier: SnsVerifier, fetch: FakeFetch, signer: KeyPair, url: str
    ) -> None:
        envelope = sign(notification(SigningCertURL=url), signer.key)
        assert "SigningCertURL" in await rejected(verifier, envelope)
        assert fetch.calls == []

    @pytest.mark.parametrize(
        "url",
        [
            f"https://sns.us-east-2.amazonaws.com/{CERT_FILE}",
            f"https://sns.cn-north-1.amazonaws.com.cn/{CERT_FILE}",
            f"https://sns.us-gov-east-1.amazonaws.com/{CERT_FILE}",
        ],
    )
    async def test_a_cert_url_outside_the_topics_region_is_never_fetched(
        self, verifier: SnsVerifier, fetch: FakeFetch, signer: KeyPair, url: str
    ) -> None:
        envelope = sign(notification(SigningCertURL=url), signer.key)
        assert await rejected(verifier, envelope) == (
            "SigningCertURL is not on the SNS host of the topic's region"
        )
        assert fetch.calls == []

    async def test_the_topics_region_is_where_its_certificate_is(
        self, fetch: FakeFetch, signer: KeyPair
    ) -> None:
        topic = "arn:aws-cn:sns:cn-northwest-1:123456789012:ses-events"
        url = f"https://sns.cn-northwest-1.amazonaws.com.cn/{CERT_FILE}"
        verifier = SnsVerifier(CertificateStore(fetch), clock=at(NOW), topics=trusting(topic))
        message = await verifier.verify(
            sign(notification(TopicArn=topic, SigningCertURL=url), signer.key)
        )
        assert message.topic_arn == topic
        assert fetch.calls == [url]

    async def test_forgers_urls_outside_the_region_leave_the_budget_to_a_new_certificate(
        self, signer: KeyPair
    ) -> None:
        """Attack report finding 4: made-up certificate URLs used up the new-URL budget."""
        fetch = FakeFetch(signer.cert_pem)
        store = CertificateStore(fetch, new_fetches=1, new_fetch_period_s=60, clock=ManualClock())
        verifier = SnsVerifier(store, clock=at(NOW), topics=trusting(TOPIC_ARN))
        impostor = self_signed()
        for number in range(10):
            forged = f"https://sns.xx-fake-{number}.amazonaws.com/{CERT_FILE}"
            elsewhere = f"https://sns.eu-west-{number % 3 + 1}.amazonaws.com/{CERT_FILE}"
            for url in (forged, elsewhere):
                await rejected(verifier, sign(notification(SigningCertURL=url), impostor.key))

        assert (await verifier.verify(sign(notification(), signer.key))).topic_arn == TOPIC_ARN
        assert fetch.calls == [CERT_URL]

    async def test_stale(self, verifier: SnsVerifier, fetch: FakeFetch, signer: KeyPair) -> None:
        two_hours_ago = (NOW - timedelta(hours=2)).isoformat()
        envelope = sign(notification(Timestamp=two_hours_ago), signer.key)
        assert await rejected(verifier, envelope) == "Timestamp is too old"
        assert fetch.calls == []

    async def test_future(self, verifier: SnsVerifier, signer: KeyPair) -> None:
        in_ten_minutes = (NOW + timedelta(minutes=10)).isoformat()
        envelope = sign(notification(Timestamp=in_ten_minutes), signer.key)
        assert await rejected(verifier, envelope) == "Timestamp is in the future"

    @pytest.mark.parametrize("offset", [-timedelta(minutes=59), timedelta(0), timedelta(minutes=4)])
    async def test_within_the_window(
        self, verifier: SnsVerifier, signer: KeyPair, offset: timedelta
    ) -> None:
        envelope = sign(notification(Timestamp=(NOW + offset).isoformat()), signer.key)
        await verifier.verify(envelope)

    async def test_max_age_is_configurable(self, fetch: FakeFetch, signer: KeyPair) -> None:
        verifier = SnsVerifier(
            CertificateStore(fetch),
            clock=at(NOW),
            topics=trusting(TOPIC_ARN),
            max_age=timedelta(minutes=5),
        )
        ten_minutes_ago = (NOW - timedelta(minutes=10)).isoformat()
        envelope = sign(notification(Timestamp=ten_minutes_ago), signer.key)
        assert await rejected(verifier, envelope) == "Timestamp is too old"

    @pytest.mark.parametrize(
        "timestamp", ["2026-01-05T09:59:58.713", "yesterday", "2026-01-05", "", "2026-13-05T00:00Z"]
    )
    async def test_malformed_timestamp(
        self, verifier: SnsVerifier, signer: KeyPair, timestamp: str
    ) -> None:
        envelope = sign(notification(Timestamp=timestamp), signer.key)
        assert "Timestamp" in await rejected(verifier, envelope)

    async def test_a_topic_not_ours_is_refused_before_any_fetch(
        self, verifier: SnsVerifier, fetch: FakeFetch, signer: KeyPair
    ) -> None:
        other = sign(notification(TopicArn=TOPIC_ARN + "-other"), signer.key)
        assert "TopicArn is not a topic of ours" in await rejected(verifier, other)
        assert fetch.calls == []

        await verifier.verify(sign(notification(), signer.key))
        assert fetch.calls == [CERT_URL]

    async def test_with_no_topic_trusted_every_message_is_refused(
        self, fetch: FakeFetch, signer: KeyPair
    ) -> None:
        verifier = SnsVerifier(CertificateStore(fetch), clock=at(NOW), topics=trusting())
        for envelope in (notification(), confirmation()):
            assert "TopicArn" in await rejected(verifier, sign(envelope, signer.key))
        assert fetch.calls == []

    async def test_a_topic_recorded_while_running_is_trusted_at_once(
        self, fetch: FakeFetch, signer: KeyPair
    ) -> None:
        recorded: set[str] = set()

        async def read_recorded() -> frozenset[str]:
            return frozenset(recorded)

        clock = ManualClock()
        topics = TrustedTopics([], read_recorded, monotonic=clock)
        verifier = SnsVerifier(CertificateStore(fetch), clock=at(NOW), topics=topics)
        assert "TopicArn" in await rejected(verifier, sign(notification(), signer.key))

        recorded.add(TOPIC_ARN)  # setup-aws records the topic, then subscribes
        clock.advance(1)
        await verifier.verify(sign(notification(), signer.key))

    async def test_trust_that_cannot_be_read_asks_sns_to_retry(
        self, fetch: FakeFetch, signer: KeyPair
    ) -> None:
        async def database_down() -> frozenset[str]:
            raise OSError("connection refused")

        topics = TrustedTopics([], database_down)
        verifier = SnsVerifier(CertificateStore(fetch), clock=at(NOW), topics=topics)
        with pytest.raises(SnsTransientError, match="could not be read"):
            await verifier.verify(sign(notification(), signer.key))
        assert fetch.calls == []

    async def test_a_key_that_verified_a_message_survives_the_churn(self, signer: KeyPair) -> None:
        fetch = FakeFetch(signer.cert_pem)
        store = CertificateStore(fetch, max_unproven=1, new_fetches=100)
        verifier = SnsVerifier(store, clock=at(NOW), topics=trusting(TOPIC_ARN))
        await verifier.verify(sign(notification(), signer.key))
        for number in range(5):
            await store.public_key(f"https://a/{number}.pem")
        fetch.calls.clear()

        await verifier.verify(sign(notification(), signer.key))
        assert fetch.calls == []

    async def test_unknown_type(self, verifier: SnsVerifier, signer: KeyPair) -> None:
        envelope = sign({**notification(), "Type": "Notificatio"}, signer.key)
        assert "Type" in await rejected(verifier, envelope)

    async def test_concurrent_messages_fetch_the_certificate_once(self, signer: KeyPair) -> None:
        fetch = FakeFetch(signer.cert_pem, delay=0.05)
        verifier = SnsVerifier(CertificateStore(fetch), clock=at(NOW), topics=trusting(TOPIC_ARN))
        envelopes = [sign(notification(MessageId=f"m-{i}"), signer.key) for i in range(100)]
        messages = await asyncio.gather(*(verifier.verify(e) for e in envelopes))
        assert [m.message_id for m in messages] == [f"m-{i}" for i in range(100)]
        assert fetch.calls == [CERT_URL]

    async def test_certificate_fetch_failure(self, signer: KeyPair) -> None:
        fetch = FakeFetch()
        fetch.error = SnsFetchError("GET failed: connection refused")
        verifier = SnsVerifier(CertificateStore(fetch), clock=at(NOW), topics=trusting(TOPIC_ARN))
        with pytest.raises(SnsFetchError, match="connection refused"):
            await verifier.verify(sign(notification(), signer.key))


class TestCertificateStore:
    async def test_fetches_once_then_caches(self, signer: KeyPair) -> None:
        fetch = FakeFetch(signer.cert_pem)
        store = CertificateStore(fetch)
        first = await store.public_key("https://a/1.pem")
        assert await store.public_key("https://a/1.pem") is first
        assert fetch.calls == ["https://a/1.pem"]

    async def test_seed_avoids_the_fetch(self, signer: KeyPair) -> None:
        fetch = FakeFetch()
        store = CertificateStore(fetch)
        store.seed("https://a/1.pem", signer.cert_pem)
        key = await store.public_key("https://a/1.pem")
        assert key.public_numbers() == signer.key.public_key().public_numbers()
        assert fetch.calls == []

    def test_seed_rejects_garbage(self) -> None:
        store = CertificateStore(FakeFetch())
        with pytest.raises(ValueError, match="PEM"):
            store.seed("https://a/1.pem", b"-----BEGIN CERTIFICATE-----\nnope\n")
        with pytest.raises(ValueError, match="RSA"):
            store.seed("https://a/1.pem", self_signed_ec())

    async def test_unproven_keys_are_bounded_and_proven_ones_kept_for_good(
        self, signer: KeyPair
    ) -> None:
        fetch = FakeFetch(signer.cert_pem)
        store = CertificateStore(fetch, max_unproven=2, new_fetches=100)
        await store.public_key("https://a/proven.pem")
        store.prove("https://a/proven.pem")
        for number in range(10):  # made-up URLs churn through the unproven ones
            await store.public_key(f"https://a/{number}.pem")
        fetch.calls.clear()

        await store.public_key("https://a/proven.pem")
        await store.public_key("https://a/9.pem")  # among the last two: still there
        await store.public_key("https://a/0.pem")  # evicted by the churn
        assert fetch.calls == ["https://a/0.pem"]

    async def test_new_urls_are_fetched_a_few_a_minute(self, signer: KeyPair) -> None:
        clock = ManualClock()
        fetch = FakeFetch(signer.cert_pem)
        store = CertificateStore(fetch, new_fetches=3, new_fetch_period_s=60, clock=clock)
        for number in range(3):
            await store.public_key(f"https://a/{number}.pem")
        for number in range(3, 70):
            with pytest.raises(SnsFetchError, match="too many new signing certificate URLs"):
                await store.public_key(f"https://a/{number}.pem")
        await store.public_key("https://a/0.pem")  # known: no fetch, no budget
        assert len(fetch.calls) == 3

        clock.advance(20)  # a third of the period: one more
        await store.public_key("https://a/70.pem")
        with pytest.raises(SnsFetchError):
            await store.public_key("https://a/71.pem")
        assert len(fetch.calls) == 4

    @pytest.mark.parametrize("body", [b"<html>not found</html>", b""])
    async def test_unusable_body_is_a_fetch_failure(self, body: bytes) -> None:
        store = CertificateStore(FakeFetch(body))
        with pytest.raises(SnsFetchError, match="signing certificate unavailable"):
            await store.public_key("https://a/1.pem")

    async def test_non_rsa_certificate_is_a_fetch_failure(self) -> None:
        store = CertificateStore(FakeFetch(self_signed_ec()))
        with pytest.raises(SnsFetchError, match="RSA"):
            await store.public_key("https://a/1.pem")

    async def test_failure_is_remembered_briefly(self, signer: KeyPair) -> None:
        clock = ManualClock()
        fetch = FakeFetch(signer.cert_pem)
        fetch.error = OSError("network unreachable")
        store = CertificateStore(fetch, clock=clock, failure_ttl=30)

        for _ in range(3):
            with pytest.raises(SnsFetchError, match="network unreachable"):
                await store.public_key("https://a/1.pem")
        assert len(fetch.calls) == 1

        fetch.error = None
        clock.advance(30)
        await store.public_key("https://a/1.pem")
        assert len(fetch.calls) == 2

    async def test_one_caller_giving_up_does_not_cancel_the_fetch(self, signer: KeyPair) -> None:
        fetch = FakeFetch(signer.cert_pem, delay=0.05)
        store = CertificateStore(fetch)
        impatient = asyncio.create_task(store.public_key("https://a/1.pem"))
        patient = asyncio.create_task(store.public_key("https://a/1.pem"))

        async def fetching() -> bool:
            return bool(fetch.calls)

        await wait_until(fetching, "the certificate fetch under way")
        impatient.cancel()
        await patient
        assert impatient.cancelled()
        assert fetch.calls == ["https://a/1.pem"]


class TestConfirmSubscription:
    async def test_gets_the_subscribe_url(self, verifier: SnsVerifier, signer: KeyPair) -> None:
        message = await verifier.verify(sign(confirmation(), signer.key))
        get = FakeFetch(b"<ConfirmSubscriptionResponse/>")
        await confirm_subscription(message, get)
        assert get.calls == [SUBSCRIBE_URL]

    @pytest.mark.parametrize(
        "url",
        [
            "https://evil.com/?Action=ConfirmSubscription",
            "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
            "https://sns.us-east-1.amazonaws.com.evil.com/",
            "https://127.0.0.1:8443/",
        ],
    )
    async def test_refuses_an_untrusted_subscribe_url(self, url: str) -> None:
        message = SnsMessage(
            type="SubscriptionConfirmation",
            message_id="m",
            topic_arn=TOPIC_ARN,
            message="",
            timestamp=NOW,
            subscribe_url=url,
            token="t",
        )
        get = FakeFetch()
        with pytest.raises(SnsVerificationError, match="SubscribeURL"):
            await confirm_subscription(message, get)
        assert get.calls == []

    @pytest.mark.parametrize("message_type", ["Notification", "UnsubscribeConfirmation"])
    async def test_refuses_other_types(
        self, verifier: SnsVerifier, signer: KeyPair, message_type: str
    ) -> None:
        envelope = (
            notification() if message_type == "Notification" else confirmation(Type=message_type)
        )
        message = await verifier.verify(sign(envelope, signer.key))
        get = FakeFetch()
        with pytest.raises(SnsVerificationError, match="SubscriptionConfirmation"):
            await confirm_subscription(message, get)
        assert get.calls == []


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    ca = tls_ca()
    return TlsFiles.write(tmp_path_factory.mktemp("tls"), ca, tls_server(ca))


@pytest.fixture
async def https_server(tls_files: TlsFiles, signer: KeyPair) -> AsyncIterator[LocalHttpsServer]:
    server = LocalHttpsServer(tls_files, signer.cert_pem)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def fetcher(
    https_server: LocalHttpsServer, tls_files: TlsFiles
) -> AsyncIterator[HttpsFetcher]:
    fetcher = HttpsFetcher(ssl_cert_file=str(tls_files.ca_file))
    yield fetcher
    await fetcher.close()


class TestHttpsFetcher:
    """Against a real TLS server on 127.0.0.1, trusted through `ssl_cert_file`."""

    async def test_fetches_over_verified_tls(
        self, fetcher: HttpsFetcher, https_server: LocalHttpsServer, signer: KeyPair
    ) -> None:
        assert await fetcher.get(https_server.url("/cert.pem")) == signer.cert_pem

    async def test_refuses_a_server_it_does_not_trust(self, https_server: LocalHttpsServer) -> None:
        fetcher = HttpsFetcher()  # the default trust store lacks the test CA
        try:
            with pytest.raises(SnsFetchError, match="certificate"):
                await fetcher.get(https_server.url("/cert.pem"))
        finally:
            await fetcher.close()
        assert https_server.hits["/cert.pem"] == 0

    async def test_does_not_follow_redirects(
        self, fetcher: HttpsFetcher, https_server: LocalHttpsServer
    ) -> None:
        with pytest.raises(SnsFetchError, match="HTTP 302"):
            await fetcher.get(https_server.url("/redirect.pem"))
        assert https_server.hits == {"/redirect.pem": 1}

    async def test_non_200_is_an_error(
        self, fetcher: HttpsFetcher, https_server: LocalHttpsServer
    ) -> None:
        https_server.failing = True
        with pytest.raises(SnsFetchError, match="HTTP 500"):
            await fetcher.get(https_server.url("/cert.pem"))
        with pytest.raises(SnsFetchError, match="HTTP 404"):
            await fetcher.get(https_server.url("/missing.pem"))

    @pytest.mark.parametrize("path", ["/big.pem", "/big-chunked.pem"])
    async def test_refuses_a_body_over_the_limit(
        self, fetcher: HttpsFetcher, https_server: LocalHttpsServer, path: str
    ) -> None:
        with pytest.raises(SnsFetchError, match="body over 65536 bytes"):
            await fetcher.get(https_server.url(path))

    async def test_times_out(self, https_server: LocalHttpsServer, tls_files: TlsFiles) -> None:
        https_server.delay = 0.5
        fetcher = HttpsFetcher(ssl_cert_file=str(tls_files.ca_file), timeout=0.1)
        try:
            with pytest.raises(SnsFetchError):
                await fetcher.get(https_server.url("/cert.pem"))
        finally:
            await fetcher.close()

    async def test_connection_refused(self, tls_files: TlsFiles) -> None:
        fetcher = HttpsFetcher(ssl_cert_file=str(tls_files.ca_file))
        try:
            with pytest.raises(SnsFetchError):
                await fetcher.get("https://127.0.0.1:1/cert.pem")
        finally:
            await fetcher.close()

    async def test_error_does_not_leak_the_query(
        self, fetcher: HttpsFetcher, https_server: LocalHttpsServer
    ) -> None:
        with pytest.raises(SnsFetchError) as caught:
            await fetcher.get(https_server.url("/missing.pem?Token=secret"))
        assert "secret" not in caught.value.reason

    async def test_store_fetches_once_under_concurrency(
        self, fetcher: HttpsFetcher, https_server: LocalHttpsServer, signer: KeyPair
    ) -> None:
        https_server.delay = 0.1
        store = CertificateStore(fetcher.get)
        url = https_server.url("/cert.pem")
        keys = await asyncio.gather(*(store.public_key(url) for _ in range(50)))
        assert all(key is keys[0] for key in keys)
        assert keys[0].public_numbers() == signer.key.public_key().public_numbers()
        assert https_server.hits["/cert.pem"] == 1

    async def test_store_retries_after_the_failure_ttl_and_not_before(
        self, fetcher: HttpsFetcher, https_server: LocalHttpsServer
    ) -> None:
        clock = ManualClock()
        store = CertificateStore(fetcher.get, clock=clock, failure_ttl=30)
        url = https_server.url("/cert.pem")

        https_server.failing = True
        with pytest.raises(SnsFetchError, match="HTTP 500"):
            await store.public_key(url)
        assert https_server.hits["/cert.pem"] == 1

        https_server.failing = False  # recovered, but the store must not know yet
        clock.advance(29.9)
        with pytest.raises(SnsFetchError, match="HTTP 500"):
            await store.public_key(url)
        assert https_server.hits["/cert.pem"] == 1

        clock.advance(0.1)
        await store.public_key(url)
        await store.public_key(url)
        assert https_server.hits["/cert.pem"] == 2

    async def test_close_is_idempotent_and_reopens_lazily(
        self, fetcher: HttpsFetcher, https_server: LocalHttpsServer
    ) -> None:
        await fetcher.close()
        await fetcher.close()
        assert await fetcher.get(https_server.url("/cert.pem"))
