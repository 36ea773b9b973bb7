"""Cancel, pause, resume and reschedule queued email; look a request up.

Topic ids may contain "/", so a topic action is the path's last segment:
`POST /v1/topics/a/b/pause` pauses topic "a/b" (and `GET /v1/topics/a/b/pause` stays the stats
of a topic named "a/b/pause").
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends

from ses_sender.control import service
from ses_sender.control.schemas import (
    MAX_CONTROL_BODY_BYTES,
    RequestCancelledOut,
    RequestOut,
    RequestRetriedOut,
    RescheduleIn,
    TopicCancelledOut,
    TopicPauseOut,
    TopicRescheduledOut,
    TopicRetriedOut,
)
from ses_sender.delivery.dependencies import WakeupDep
from ses_sender.web.auth import require_api_key
from ses_sender.web.body import JsonBody
from ses_sender.web.dependencies import NowDep, SessionDep
from ses_sender.web.paths import row_id

router = APIRouter(prefix="/v1", tags=["control"], dependencies=[Depends(require_api_key)])

RequestId = Annotated[int, row_id("a request id")]
RescheduleBody = Annotated[
    RescheduleIn, Depends(JsonBody(RescheduleIn, max_bytes=MAX_CONTROL_BODY_BYTES))
]


@router.post("/topics/{topic_id:path}/cancel", response_model=TopicCancelledOut)
async def cancel_topic(topic_id: str, session: SessionDep, now: NowDep) -> TopicCancelledOut:
    """Stop every request of the topic not sent yet; say what could not be cancelled."""
    return await service.cancel_topic(session, service.check_topic_id(topic_id), now=now)


@router.post("/topics/{topic_id:path}/pause", response_model=TopicPauseOut)
async def pause_topic(topic_id: str, session: SessionDep, now: NowDep) -> TopicPauseOut:
    """Hold the topic's queued requests (and any added later) until it is resumed."""
    return await service.pause_topic(session, service.check_topic_id(topic_id), now=now)


@router.post("/topics/{topic_id:path}/resume", response_model=TopicPauseOut)
async def resume_topic(
    topic_id: str,
    session: SessionDep,
    now: NowDep,
    wakeup: WakeupDep,
    background: BackgroundTasks,
) -> TopicPauseOut:
    """Send the topic's held requests again, each when it was due (its scheduled time, or now)."""
    answer = await service.resume_topic(session, service.check_topic_id(topic_id), now=now)
    background.add_task(wakeup.notify)  # after the commit
    return answer


@router.post("/topics/{topic_id:path}/reschedule", response_model=TopicRescheduledOut)
async def reschedule_topic(
    topic_id: str,
    body: RescheduleBody,
    session: SessionDep,
    now: NowDep,
    wakeup: WakeupDep,
    background: BackgroundTasks,
) -> TopicRescheduledOut:
    """Move the topic's queued requests to `scheduledAt` (RFC 3339; past or blank means now)."""
    topic = service.check_topic_id(topic_id)
    answer = await service.reschedule_topic(session, topic, body, now=now)
    background.add_task(wakeup.notify)
    return answer


@router.post(
    "/topics/{topic_id:path}/retry",
    response_model=TopicRetriedOut,
    responses={404: {"description": "no request has this topic"}},
)
async def retry_topic(
    topic_id: str,
    session: SessionDep,
    now: NowDep,
    wakeup: WakeupDep,
    background: BackgroundTasks,
) -> TopicRetriedOut:
    """Queue the topic's Failed requests again, each with its attempts counted afresh."""
    answer = await service.retry_topic(session, service.check_topic_id(topic_id), now=now)
    background.add_task(wakeup.notify)  # after the commit
    return answer


@router.post(
    "/requests/{request_id}/retry",
    response_model=RequestRetriedOut,
    responses={404: {"description": "no such request"}},
)
async def retry_request(
    request_id: RequestId,
    session: SessionDep,
    now: NowDep,
    wakeup: WakeupDep,
    background: BackgroundTasks,
) -> RequestRetriedOut:
    """Queue one Failed request again; `requeued` is 0 when it was not Failed."""
    answer = await service.retry_request(session, request_id, now=now)
    background.add_task(wakeup.notify)
    return answer


@router.get("/requests/{request_id}", response_model=RequestOut)
async def get_request(request_id: RequestId, session: SessionDep) -> RequestOut:
    """One request: its status, times, error, and what happened after it was sent."""
    return await service.request_details(session, request_id)


@router.post(
    "/requests/{request_id}/cancel",
    response_model=RequestCancelledOut,
    responses={
        404: {"description": "no such request"},
        409: {"description": "already sent or failed; the body carries its `status`"},
    },
)
async def cancel_request(
    request_id: RequestId, session: SessionDep, now: NowDep
) -> RequestCancelledOut:
    """Stop one request not sent yet; 409 (with its `status`) if it was sent or failed."""
    return await service.cancel_request(session, request_id, now=now)
