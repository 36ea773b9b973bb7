from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ses_sender.tracking.recorder import HitRecorder
from ses_sender.tracking.service import LinkTargets
from ses_sender.tracking.tokens import TrackingTokens
from ses_sender.web.provided import Provided

TOKENS = Provided[TrackingTokens]("tracking tokens")
HITS = Provided[HitRecorder]("open and click recorder")
LINK_TARGETS = Provided[LinkTargets]("tracked link targets")

TokensDep = Annotated[TrackingTokens, Depends(TOKENS)]
HitsDep = Annotated[HitRecorder, Depends(HITS)]
LinkTargetsDep = Annotated[LinkTargets, Depends(LINK_TARGETS)]
