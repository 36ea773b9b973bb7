from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ses_sender.health.service import Health
from ses_sender.web.provided import Provided

HEALTH = Provided[Health]("health report")

HealthDep = Annotated[Health, Depends(HEALTH)]
