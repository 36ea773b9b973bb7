"""Every table, on one metadata (what Alembic compares against)."""

from ses_sender.models.content import Attachment, Content
from ses_sender.models.health import HealthCheck
from ses_sender.models.idempotency import IdempotencyKey
from ses_sender.models.request import (
    Outcome,
    Request,
    RequestChange,
    RequestStatus,
    StopReason,
)
from ses_sender.models.result import EventPayload, EventType, Result, ResultSource
from ses_sender.models.secret import AppSecret
from ses_sender.models.sending import RateLimit, SendingPause, TopicPause
from ses_sender.models.sns_topic import TrustedTopic
from ses_sender.models.stats import CounterScope, StatCounter, StatDelta, StatTopic
from ses_sender.models.suppression import Suppression, SuppressionReason
from ses_sender.models.template import Template, TemplateVersion
from ses_sender.models.webhook import DeliveryStatus, Webhook, WebhookDelivery

__all__ = [
    "AppSecret",
    "Attachment",
    "Content",
    "CounterScope",
    "DeliveryStatus",
    "EventPayload",
    "EventType",
    "HealthCheck",
    "IdempotencyKey",
    "Outcome",
    "RateLimit",
    "Request",
    "RequestChange",
    "RequestStatus",
    "Result",
    "ResultSource",
    "SendingPause",
    "StatCounter",
    "StatDelta",
    "StatTopic",
    "StopReason",
    "Suppression",
    "SuppressionReason",
    "Template",
    "TemplateVersion",
    "TopicPause",
    "TrustedTopic",
    "Webhook",
    "WebhookDelivery",
]
