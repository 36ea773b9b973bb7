"""Every AWS call `setup-aws` and `doctor` make: reading what exists, and applying changes
(and, through the caller, the one change in our own database: trusting the topic).

The clients resolve endpoints as AWS tools do (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SESV2`,
`AWS_ENDPOINT_URL_SNS`) and take credentials and region from the same settings as the SES
transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError

from ses_sender.aws_setup.plan import (
    DELIVERY_POLICY,
    DESTINATION_NAME,
    EVENT_TYPES,
    SIGNATURE_VERSION,
    AllowSesPublish,
    Change,
    CreateConfigurationSet,
    CreateTopic,
    Current,
    Desired,
    Destination,
    PutEventDestination,
    SetDeliveryPolicy,
    SetSignatureVersion,
    Subscribe,
    Subscription,
    Topic,
    TrustTopic,
    TurnOffRawDelivery,
    retries_for_an_hour,
)
from ses_sender.aws_setup.topic_policy import ses_may_publish, with_ses_statement
from ses_sender.config import Settings

if TYPE_CHECKING:
    from types_aiobotocore_sesv2 import SESV2Client
    from types_aiobotocore_sesv2.literals import EventTypeType
    from types_aiobotocore_sesv2.type_defs import EventDestinationDefinitionTypeDef

_CONFIG = AioConfig(
    connect_timeout=5,
    read_timeout=15,
    retries={"mode": "standard", "total_max_attempts": 3},
)
_NOT_FOUND = frozenset({"NotFoundException", "NotFound"})
# How SNS lists a subscription that is not (or no longer) confirmed in place of its ARN.
_PENDING = "PendingConfirmation"
_DELETED = "Deleted"
# SNS's default when a topic reports no SignatureVersion.
_DEFAULT_SIGNATURE_VERSION = "1"


@dataclass(frozen=True)
class AwsClients:
    sesv2: SESV2Client
    sns: Any  # no type stubs for the SNS client among the dev requirements
    region: str


@asynccontextmanager
async def open_clients(settings: Settings) -> AsyncIterator[AwsClients]:
    session = get_session()
    async with AsyncExitStack() as stack:
        sesv2, sns = [
            await stack.enter_async_context(
                session.create_client(
                    service,
                    region_name=settings.aws_region,
                    aws_access_key_id=settings.aws_access_key_id,
                    aws_secret_access_key=settings.aws_secret_access_key,
                    aws_session_token=settings.aws_session_token,
                    config=_CONFIG,
                )
            )
            for service in ("sesv2", "sns")
        ]
        yield AwsClients(sesv2=sesv2, sns=sns, region=settings.aws_region)


def describe_aws_error(error: Exception) -> str:
    """One line: the operation, SES's or SNS's error code and message, or botocore's reason."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code", "error")
        message = " ".join(str(details.get("Message", "")).split())
        return ": ".join(part for part in (error.operation_name, code, message) if part)
    return str(error) or type(error).__name__


AWS_ERRORS = (ClientError, BotoCoreError)


def _is_not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _NOT_FOUND


# Reading


async def read_current(clients: AwsClients, desired: Desired) -> Current:
    exists = await configuration_set_exists(clients.sesv2, desired.configuration_set)
    destinations = (
        await event_destinations(clients.sesv2, desired.configuration_set) if exists else []
    )
    topic = await find_topic(clients.sns, desired.topic_name, desired.configuration_set)
    return Current(
        configuration_set_exists=exists,
        destination=next((d for d in destinations if d.name == DESTINATION_NAME), None),
        topic=topic,
        subscription=(
            None
            if topic is None
            else await find_subscription(clients.sns, topic.arn, desired.endpoint)
        ),
    )


async def configuration_set_exists(sesv2: SESV2Client, name: str) -> bool:
    try:
        await sesv2.get_configuration_set(ConfigurationSetName=name)
    except ClientError as error:
        if _is_not_found(error):
            return False
        raise
    return True


async def event_destinations(sesv2: SESV2Client, configuration_set: str) -> list[Destination]:
    response = await sesv2.get_configuration_set_event_destinations(
        ConfigurationSetName=configuration_set
    )
    return [
        Destination(
            name=destination["Name"],
            enabled=destination.get("Enabled", False),
            event_types=frozenset(destination["MatchingEventTypes"]),
            topic_arn=destination.get("SnsDestination", {}).get("TopicArn"),
        )
        for destination in response.get("EventDestinations", [])
    ]


async def find_topic(sns: Any, name: str, configuration_set: str) -> Topic | None:
    async for page in sns.get_paginator("list_topics").paginate():
        for entry in page.get("Topics", []):
            arn: str = entry["TopicArn"]
            if arn.rsplit(":", 1)[-1] == name:
                return await topic(sns, arn, configuration_set)
    return None


async def topic(sns: Any, arn: str, configuration_set: str) -> Topic | None:
    """The topic at `arn`, or None if there is none; `configuration_set` publishes to it."""
    attributes = await _topic_attributes(sns, arn)
    if attributes is None:
        return None
    return Topic(
        arn,
        attributes.get("SignatureVersion", _DEFAULT_SIGNATURE_VERSION),
        ses_may_publish=ses_may_publish(attributes.get("Policy"), arn, configuration_set),
    )


async def _topic_attributes(sns: Any, arn: str) -> dict[str, str] | None:
    try:
        response = await sns.get_topic_attributes(TopicArn=arn)
    except ClientError as error:
        if _is_not_found(error):
            return None
        raise
    attributes: dict[str, str] = response.get("Attributes", {})
    return attributes


async def subscriptions(sns: Any, topic_arn: str) -> list[tuple[str, str | None]]:
    """(endpoint, ARN or None while pending) of the topic's HTTPS subscriptions."""
    found: list[tuple[str, str | None]] = []
    paginator = sns.get_paginator("list_subscriptions_by_topic")
    async for page in paginator.paginate(TopicArn=topic_arn):
        for entry in page.get("Subscriptions", []):
            arn = entry.get("SubscriptionArn", "")
            if entry.get("Protocol") not in ("http", "https") or arn == _DELETED:
                continue
            found.append((entry.get("Endpoint", ""), None if arn == _PENDING else arn))
    return found


async def find_subscription(sns: Any, topic_arn: str, endpoint: str) -> Subscription | None:
    matching = [arn for url, arn in await subscriptions(sns, topic_arn) if url == endpoint]
    if not matching:
        return None
    # A confirmed one wins over a pending one for the same endpoint.
    arn = next((arn for arn in matching if arn is not None), None)
    if arn is None:
        return Subscription(endpoint, None, raw_message_delivery=False)
    response = await sns.get_subscription_attributes(SubscriptionArn=arn)
    attributes = response.get("Attributes", {})
    return Subscription(
        endpoint,
        arn,
        raw_message_delivery=attributes.get("RawMessageDelivery", "false").lower() == "true",
        retries_for_an_hour=retries_for_an_hour(attributes.get("DeliveryPolicy")),
    )


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    verified_for_sending: bool
    status: str  # SUCCESS, PENDING, FAILED, TEMPORARY_FAILURE or NOT_STARTED


async def email_identity(sesv2: SESV2Client, name: str) -> Identity | None:
    try:
        response = await sesv2.get_email_identity(EmailIdentity=name)
    except ClientError as error:
        if _is_not_found(error):
            return None
        raise
    return Identity(
        name,
        verified_for_sending=response.get("VerifiedForSendingStatus", False),
        status=response.get("VerificationStatus", "NOT_STARTED"),
    )


@dataclass(frozen=True, slots=True)
class Account:
    production_access: bool
    sending_enabled: bool
    enforcement_status: str | None
    max_send_rate: float
    max_24_hour_send: float  # -1: unlimited
    sent_last_24_hours: float


async def account(sesv2: SESV2Client) -> Account:
    response = await sesv2.get_account()
    quota = response.get("SendQuota", {})
    return Account(
        production_access=response.get("ProductionAccessEnabled", False),
        sending_enabled=response.get("SendingEnabled", False),
        enforcement_status=response.get("EnforcementStatus"),
        max_send_rate=quota.get("MaxSendRate", 0.0),
        max_24_hour_send=quota.get("Max24HourSend", 0.0),
        sent_last_24_hours=quota.get("SentLast24Hours", 0.0),
    )


# Changing


async def apply_changes(
    clients: AwsClients,
    changes: Sequence[Change],
    *,
    trust_topic: Callable[[str], Awaitable[None]],
    applied: Callable[[Change], None],
) -> None:
    """Apply in order, calling `applied` after each change that succeeded; `trust_topic`
    records a topic in the service's database."""
    created_topic_arn: str | None = None
    for change in changes:
        match change:
            case CreateConfigurationSet(name=name):
                await clients.sesv2.create_configuration_set(ConfigurationSetName=name)
            case CreateTopic(name=name):
                response = await clients.sns.create_topic(
                    Name=name, Attributes={"SignatureVersion": SIGNATURE_VERSION}
                )
                created_topic_arn = response["TopicArn"]
            case SetSignatureVersion(topic_arn=arn):
                await clients.sns.set_topic_attributes(
                    TopicArn=arn, AttributeName="SignatureVersion", AttributeValue=SIGNATURE_VERSION
                )
            case AllowSesPublish():
                await _allow_ses_publish(clients.sns, change, change.topic_arn or created_topic_arn)
            case PutEventDestination():
                await _put_event_destination(
                    clients.sesv2, change, change.topic_arn or created_topic_arn
                )
            case TrustTopic():
                trusted = change.topic_arn or created_topic_arn
                assert trusted is not None  # the plan creates the topic before it trusts it
                await trust_topic(trusted)
            case Subscribe(endpoint=endpoint):
                await clients.sns.subscribe(
                    TopicArn=change.topic_arn or created_topic_arn,
                    Protocol="https",
                    Endpoint=endpoint,
                    Attributes={"RawMessageDelivery": "false", "DeliveryPolicy": DELIVERY_POLICY},
                    ReturnSubscriptionArn=True,
                )
            case TurnOffRawDelivery(subscription_arn=arn):
                await clients.sns.set_subscription_attributes(
                    SubscriptionArn=arn, AttributeName="RawMessageDelivery", AttributeValue="false"
                )
            case SetDeliveryPolicy(subscription_arn=arn):
                await clients.sns.set_subscription_attributes(
                    SubscriptionArn=arn,
                    AttributeName="DeliveryPolicy",
                    AttributeValue=DELIVERY_POLICY,
                )
        applied(change)


async def _allow_ses_publish(sns: Any, change: AllowSesPublish, topic_arn: str | None) -> None:
    assert topic_arn is not None  # the plan creates the topic before it changes its policy
    attributes = await _topic_attributes(sns, topic_arn) or {}
    await sns.set_topic_attributes(
        TopicArn=topic_arn,
        AttributeName="Policy",
        AttributeValue=with_ses_statement(
            attributes.get("Policy"), topic_arn, change.configuration_set
        ),
    )


async def _put_event_destination(
    sesv2: SESV2Client, change: PutEventDestination, topic_arn: str | None
) -> None:
    assert topic_arn is not None  # the plan creates the topic before it points anything at it
    definition: EventDestinationDefinitionTypeDef = {
        "Enabled": True,
        "MatchingEventTypes": cast("list[EventTypeType]", sorted(EVENT_TYPES)),
        "SnsDestination": {"TopicArn": topic_arn},
    }
    if change.exists:
        await sesv2.update_configuration_set_event_destination(
            ConfigurationSetName=change.configuration_set,
            EventDestinationName=DESTINATION_NAME,
            EventDestination=definition,
        )
    else:
        await sesv2.create_configuration_set_event_destination(
            ConfigurationSetName=change.configuration_set,
            EventDestinationName=DESTINATION_NAME,
            EventDestination=definition,
        )
