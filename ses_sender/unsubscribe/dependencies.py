from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ses_sender.web.provided import Provided

# The From address of our email (EMAIL_SENDER): the page says whose mail a person leaves.
SENDER = Provided[str]("email sender")

SenderDep = Annotated[str, Depends(SENDER)]
