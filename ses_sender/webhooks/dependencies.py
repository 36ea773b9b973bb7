from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ses_sender.web.provided import Provided

ALLOW_PRIVATE = Provided[bool]("webhook receivers inside the network (WEBHOOK_ALLOW_PRIVATE)")

AllowPrivateDep = Annotated[bool, Depends(ALLOW_PRIVATE)]
