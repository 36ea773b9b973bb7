from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ses_sender.messages.envelope import SenderPolicy
from ses_sender.web.provided import Provided

RECIPIENT_LIMIT = Provided[int]("recipient limit (MAX_RECIPIENTS_PER_REQUEST)")
SENDER_POLICY = Provided[SenderPolicy]("allowed senders (EMAIL_SENDER, ALLOWED_SENDERS)")
PUBLIC_BASE_URL = Provided[str]("public base URL (SERVER_HOST)")

RecipientLimitDep = Annotated[int, Depends(RECIPIENT_LIMIT)]
SenderPolicyDep = Annotated[SenderPolicy, Depends(SENDER_POLICY)]
PublicBaseUrlDep = Annotated[str, Depends(PUBLIC_BASE_URL)]
