"""What `setup-aws` wants to exist, what exists, and the changes between them.

Pure: `resources.read_current` fetches the `Current` state, `plan_changes` compares it with the
`Desired` one, and `resources.apply_change` carries out each change in order. Running the plan
twice changes nothing the second time, because the second reading finds everything in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

# Every configuration-set event type (sesv2 EventType): the service reads them all.
EVENT_TYPES: Final = frozenset(
    {
        "SEND",
        "REJECT",
        "BOUNCE",
        "COMPLAINT",
        "DELIVERY",
        "OPEN",
        "CLICK",
        "RENDERING_FAILURE",
        "DELIVERY_DELAY",
        "SUBSCRIPTION",
    }
)
DESTINATION_NAME: Final = "ses-sender-sns"
# SHA256 signatures; a topic signs with SHA1 (version 1) unless told otherwise.
SIGNATURE_VERSION: Final = "2"
TOPIC_SUFFIX: Final = "-ses-events"
EVENTS_PATH: Final = "/v1/events/results"
# How SNS retries a delivery our endpoint answered 5xx (a new signing certificate waiting for the
# fetch budget, the database down): every 35 s, 100 times, 58 minutes in all, against its
# default of 3 retries 20 s apart. SNS allows at most 100 retries and 3,600 s in all.
RETRY_POLICY: Final[dict[str, Any]] = {
    "minDelayTarget": 35,
    "maxDelayTarget": 35,
    "numRetries": 100,
    "numNoDelayRetries": 0,
    "numMinDelayRetries": 0,
    "numMaxDelayRetries": 0,
    "backoffFunction": "linear",
}
DELIVERY_POLICY: Final = json.dumps({"healthyRetryPolicy": RETRY_POLICY})


def retries_for_an_hour(delivery_policy: str | None) -> bool:
    """Whether a subscription's DeliveryPolicy attribute retries as `RETRY_POLICY` does."""
    try:
        policy = json.loads(delivery_policy or "{}")
    except ValueError:
        return False
    retry = policy.get("healthyRetryPolicy") if isinstance(policy, dict) else None
    return isinstance(retry, dict) and all(retry.get(k) == v for k, v in RETRY_POLICY.items())


def topic_name(configuration_set: str) -> str:
    """The topic for a configuration set; both names allow letters, digits, '-' and '_'."""
    return f"{configuration_set}{TOPIC_SUFFIX}"


@dataclass(frozen=True, slots=True)
class Desired:
    configuration_set: str
    endpoint: str  # https://<public host>/v1/events/results

    @property
    def topic_name(self) -> str:
        return topic_name(self.configuration_set)


@dataclass(frozen=True, slots=True)
class Destination:
    """A configuration set's event destination, as SES reports it."""

    name: str
    enabled: bool
    event_types: frozenset[str]
    topic_arn: str | None  # None: not an SNS destination


@dataclass(frozen=True, slots=True)
class Topic:
    arn: str
    signature_version: str
    #: Whether the topic's policy lets SES publish the configuration set's events to it.
    ses_may_publish: bool


@dataclass(frozen=True, slots=True)
class Subscription:
    endpoint: str
    #: None while the subscription waits for the endpoint to confirm it.
    arn: str | None
    raw_message_delivery: bool
    #: Whether its DeliveryPolicy retries for most of an hour (`RETRY_POLICY`).
    retries_for_an_hour: bool = True

    @property
    def confirmed(self) -> bool:
        return self.arn is not None


@dataclass(frozen=True, slots=True)
class Current:
    configuration_set_exists: bool
    #: Ours (`DESTINATION_NAME`); None when absent or when the configuration set is.
    destination: Destination | None
    topic: Topic | None
    #: The endpoint's HTTPS subscription to the topic; None when absent or when the topic is.
    subscription: Subscription | None
    #: Whether this service's database records the topic as one whose messages count.
    topic_trusted: bool = False


# Changes. A `topic_arn` of None means "the topic created earlier in the same plan".


@dataclass(frozen=True, slots=True)
class CreateConfigurationSet:
    name: str

    def describe(self) -> str:
        return f"create the configuration set {self.name}"


@dataclass(frozen=True, slots=True)
class CreateTopic:
    name: str

    def describe(self) -> str:
        return f"create the SNS topic {self.name} (SignatureVersion {SIGNATURE_VERSION})"


@dataclass(frozen=True, slots=True)
class SetSignatureVersion:
    topic_arn: str
    was: str

    def describe(self) -> str:
        return (
            f"set SignatureVersion {SIGNATURE_VERSION} on {self.topic_arn} (was {self.was}): "
            "notifications signed with SHA256"
        )


@dataclass(frozen=True, slots=True)
class AllowSesPublish:
    topic_arn: str | None
    topic_name: str
    configuration_set: str

    def describe(self) -> str:
        return (
            f"let SES publish the events of {self.configuration_set} to the topic "
            f"{self.topic_name} (a statement in the topic's policy)"
        )


@dataclass(frozen=True, slots=True)
class PutEventDestination:
    configuration_set: str
    topic_arn: str | None
    topic_name: str
    exists: bool  # update ours rather than create it

    def describe(self) -> str:
        verb = "update" if self.exists else "add"
        return (
            f"{verb} the event destination {DESTINATION_NAME} of {self.configuration_set}: "
            f"all {len(EVENT_TYPES)} event types to the topic {self.topic_name}"
        )


@dataclass(frozen=True, slots=True)
class TrustTopic:
    topic_arn: str | None
    topic_name: str

    def describe(self) -> str:
        return f"trust the topic {self.topic_name}: record it in this service's database"


@dataclass(frozen=True, slots=True)
class Subscribe:
    topic_arn: str | None
    topic_name: str
    endpoint: str

    def describe(self) -> str:
        return (
            f"subscribe {self.endpoint} to the topic {self.topic_name} (raw message delivery "
            "off, failed deliveries retried for an hour)"
        )


@dataclass(frozen=True, slots=True)
class TurnOffRawDelivery:
    subscription_arn: str

    def describe(self) -> str:
        return (
            f"turn raw message delivery off on {self.subscription_arn}: raw messages are unsigned "
            "and the service refuses them"
        )


@dataclass(frozen=True, slots=True)
class SetDeliveryPolicy:
    subscription_arn: str

    def describe(self) -> str:
        return (
            f"let SNS retry failed deliveries on {self.subscription_arn} every "
            f"{RETRY_POLICY['minDelayTarget']} s for an hour, not 3 times in a minute"
        )


Change: TypeAlias = (
    CreateConfigurationSet
    | CreateTopic
    | SetSignatureVersion
    | AllowSesPublish
    | PutEventDestination
    | TrustTopic
    | Subscribe
    | TurnOffRawDelivery
    | SetDeliveryPolicy
)


def plan_changes(desired: Desired, current: Current) -> list[Change]:
    """The changes that bring `current` to `desired`, in the order they must be applied."""
    changes: list[Change] = []
    if not current.configuration_set_exists:
        changes.append(CreateConfigurationSet(desired.configuration_set))

    topic_arn = current.topic.arn if current.topic is not None else None
    if current.topic is None:
        changes.append(CreateTopic(desired.topic_name))
    elif current.topic.signature_version != SIGNATURE_VERSION:
        changes.append(SetSignatureVersion(current.topic.arn, current.topic.signature_version))
    if current.topic is None or not current.topic.ses_may_publish:
        changes.append(AllowSesPublish(topic_arn, desired.topic_name, desired.configuration_set))

    if not _destination_is_ready(current.destination, topic_arn):
        changes.append(
            PutEventDestination(
                desired.configuration_set,
                topic_arn,
                desired.topic_name,
                exists=current.destination is not None,
            )
        )

    if current.topic is None or not current.topic_trusted:
        changes.append(TrustTopic(topic_arn, desired.topic_name))

    subscription = current.subscription
    if subscription is None:
        changes.append(Subscribe(topic_arn, desired.topic_name, desired.endpoint))
    elif subscription.arn is not None:
        if subscription.raw_message_delivery:
            changes.append(TurnOffRawDelivery(subscription.arn))
        if not subscription.retries_for_an_hour:
            changes.append(SetDeliveryPolicy(subscription.arn))
    return changes


def _destination_is_ready(destination: Destination | None, topic_arn: str | None) -> bool:
    return (
        destination is not None
        and topic_arn is not None
        and destination.enabled
        and destination.event_types == EVENT_TYPES
        and destination.topic_arn == topic_arn
    )
