from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ses_sender import instruments
from ses_sender.errors import InvalidInput, ServiceError
from ses_sender.ses_events import service
from ses_sender.ses_events.dependencies import FetcherDep, IngesterDep, SnsVerifierDep
from ses_sender.ses_events.schemas import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, UnmatchedEventsOut
from ses_sender.ses_events.sns import (
    SnsTransientError,
    SnsVerificationError,
    confirm_subscription,
    parse_envelope,
)
from ses_sender.web.auth import require_api_key
from ses_sender.web.body import read_body
from ses_sender.web.dependencies import NowDep, SessionDep

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/events", tags=["ses events"])

# SNS messages are at most 256 KiB; the envelope adds a little.
MAX_SNS_BODY_BYTES = 512 * 1024


@router.post("/results")
async def receive_sns(
    request: Request,
    verifier: SnsVerifierDep,
    fetcher: FetcherDep,
    ingester: IngesterDep,
    now: NowDep,
) -> JSONResponse:
    """SNS HTTPS endpoint: verified, stored once, applied; 5xx only to ask SNS to retry.

    Notifications are stored by the ingester, which commits those that arrive together in one
    transaction and answers each request once its own is committed.
    """
    body = await read_body(request, MAX_SNS_BODY_BYTES)
    try:
        message = await verifier.verify(parse_envelope(body))
        if message.type == "SubscriptionConfirmation":
            await confirm_subscription(message, fetcher.get)
            log.info("confirmed the SNS subscription to %s", message.topic_arn)
            instruments.SNS_MESSAGES.labels(message.type, "confirmed").inc()
            return JSONResponse({"message": "subscription confirmed"})
    except SnsVerificationError as error:
        instruments.SNS_VERIFICATION_FAILURES.labels("rejected").inc()
        raise InvalidInput(f"SNS message rejected: {error.reason}") from None
    except SnsTransientError as error:
        # The reason stays in our log: it can name hosts and proxies of our network.
        log.warning("SNS message not verified yet: %s", error.reason)
        instruments.SNS_VERIFICATION_FAILURES.labels("retry").inc()
        raise ServiceError(
            "SNS message not verified yet: try again later", status_code=503
        ) from None
    if message.type == "UnsubscribeConfirmation":
        log.warning("SNS says %s unsubscribed this endpoint", message.topic_arn)
        instruments.SNS_MESSAGES.labels(message.type, "noted").inc()
        return JSONResponse({"message": "unsubscribe noted"})
    outcome = await ingester.ingest(message, now=now)
    instruments.SNS_MESSAGES.labels(message.type, outcome.value).inc()
    return JSONResponse({"message": outcome.value})


@router.get(
    "/unmatched", response_model=UnmatchedEventsOut, dependencies=[Depends(require_api_key)]
)
async def list_unmatched_events(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> UnmatchedEventsOut:
    """SES events that name no request of ours, newest first: kept for review and applied to
    nothing. Events whose send is recorded later are attached then and leave this list.

    Pass the answer's `nextCursor` as `cursor` for the next page; it is null on the last.
    """
    return await service.list_unmatched_events(session, cursor=cursor, limit=limit)
