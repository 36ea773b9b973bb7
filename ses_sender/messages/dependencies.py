from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ses_sender.web.provided import Provided

RECIPIENT_LIMIT = Provided[int]("recipient limit (MAX_RECIPIENTS_PER_REQUEST)")

RecipientLimitDep = Annotated[int, Depends(RECIPIENT_LIMIT)]
