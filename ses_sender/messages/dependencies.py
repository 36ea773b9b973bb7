from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends

from ses_sender.db.turns import WriterTurns
from ses_sender.messages.envelope import SenderPolicy
from ses_sender.web.provided import Provided

RECIPIENT_LIMIT = Provided[int]("recipient limit (MAX_RECIPIENTS_PER_REQUEST)")
SENDER_POLICY = Provided[SenderPolicy]("allowed senders (EMAIL_SENDER, ALLOWED_SENDERS)")
PUBLIC_BASE_URL = Provided[str]("public base URL (SERVER_HOST)")
TRACK_CLICKS = Provided[bool]("whether links are tracked by default (TRACK_CLICKS)")
INGEST_TURNS = Provided[WriterTurns]("turns of the bulk writers")

RecipientLimitDep = Annotated[int, Depends(RECIPIENT_LIMIT)]
SenderPolicyDep = Annotated[SenderPolicy, Depends(SENDER_POLICY)]
PublicBaseUrlDep = Annotated[str, Depends(PUBLIC_BASE_URL)]
TrackClicksDep = Annotated[bool, Depends(TRACK_CLICKS)]


async def _ingest_turn(
    turns: Annotated[WriterTurns, Depends(INGEST_TURNS)],
) -> AsyncIterator[None]:
    async with turns.turn():
        yield


# Taken after the body is read and parsed (a slow client must not hold the turn while it
# uploads) and before the session (`SessionDep`), so that the turn ends after the commit: both
# are function-scoped, and FastAPI closes them in the reverse order.
IngestTurnDep = Annotated[None, Depends(_ingest_turn, scope="function")]
