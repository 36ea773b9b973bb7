from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ses_sender.tracking.tokens import TrackingTokens
from ses_sender.web.provided import Provided

TOKENS = Provided[TrackingTokens]("tracking tokens")

TokensDep = Annotated[TrackingTokens, Depends(TOKENS)]
