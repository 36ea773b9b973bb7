"""Every table, on one metadata (what Alembic compares against)."""

from ses_sender.models.content import Content
from ses_sender.models.idempotency import IdempotencyKey
from ses_sender.models.request import Outcome, Request, RequestStatus
from ses_sender.models.result import Result, ResultSource
from ses_sender.models.secret import AppSecret
from ses_sender.models.sending import RateLimit, SendingPause, TopicPause
from ses_sender.models.sns_topic import TrustedTopic
from ses_sender.models.suppression import (
    SUPPRESSED_ERROR_PREFIX,
    Suppression,
    SuppressionReason,
)
from ses_sender.models.webhook import DeliveryStatus, Webhook, WebhookDelivery

__all__ = [
    "SUPPRESSED_ERROR_PREFIX",
    "AppSecret",
    "Content",
    "DeliveryStatus",
    "IdempotencyKey",
    "Outcome",
    "RateLimit",
    "Request",
    "RequestStatus",
    "Result",
    "ResultSource",
    "SendingPause",
    "Suppression",
    "SuppressionReason",
    "TopicPause",
    "TrustedTopic",
    "Webhook",
    "WebhookDelivery",
]
