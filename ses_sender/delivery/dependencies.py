"""What the engine gives the HTTP endpoints of other features."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ses_sender.delivery.wakeup import Wakeup
from ses_sender.web.provided import Provided

WAKEUP = Provided[Wakeup]("worker wake-up")

# Notify after the commit (a background task runs after the response, so after it).
WakeupDep = Annotated[Wakeup, Depends(WAKEUP)]
