from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ses_sender.errors import InvalidInput, ServiceError
from ses_sender.request_body import read_body
from ses_sender.runtime import Runtime
from ses_sender.ses_events.sns import (
    SnsFetchError,
    SnsVerificationError,
    confirm_subscription,
    parse_envelope,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/events", tags=["ses events"])

# SNS messages are at most 256 KiB; the envelope adds a little.
MAX_SNS_BODY_BYTES = 512 * 1024


@router.post("/results")
async def receive_sns(request: Request) -> JSONResponse:
    """SNS HTTPS endpoint: verified, stored once, applied; 5xx only to ask SNS to retry.

    Notifications are stored by `runtime.ses_events`, which commits those that arrive together
    in one transaction and answers each request once its own is committed.
    """
    runtime: Runtime = request.app.state.runtime
    body = await read_body(request, MAX_SNS_BODY_BYTES)
    try:
        message = await runtime.sns.verify(parse_envelope(body))
        if message.type == "SubscriptionConfirmation":
            await confirm_subscription(message, runtime.fetcher.get)
            log.info("confirmed the SNS subscription to %s", message.topic_arn)
            return JSONResponse({"message": "subscription confirmed"})
    except SnsVerificationError as error:
        raise InvalidInput(f"SNS message rejected: {error.reason}") from None
    except SnsFetchError as error:
        log.warning("SNS message not verified yet: %s", error.reason)
        raise ServiceError(f"try again: {error.reason}", status_code=503) from None
    if message.type == "UnsubscribeConfirmation":
        log.warning("SNS says %s unsubscribed this endpoint", message.topic_arn)
        return JSONResponse({"message": "unsubscribe noted"})
    outcome = await runtime.ses_events.ingest(message, now=runtime.clock.now())
    return JSONResponse({"message": outcome.value})
