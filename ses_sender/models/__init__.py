"""Every table, on one metadata (what Alembic compares against)."""

from ses_sender.models.content import Content
from ses_sender.models.idempotency import IdempotencyKey
from ses_sender.models.request import Request, RequestStatus
from ses_sender.models.result import Result, ResultSource
from ses_sender.models.secret import AppSecret

__all__ = [
    "AppSecret",
    "Content",
    "IdempotencyKey",
    "Request",
    "RequestStatus",
    "Result",
    "ResultSource",
]
