from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

# Who can pause sending (service.ACCOUNT, service.SES_UNREACHABLE, the guardrail's PAUSE_NAME):
# resuming any other name could lift nothing, ever, so it is a mistake worth a 400.
PauseName = Literal["account", "guardrail", "ses_unreachable"]
MAX_RESUME_BODY_BYTES = 4096


class SendingState(BaseModel):
    paused: bool
    reasons: list[str]  # "<name>: <reason>", oldest pause first


class ResumeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # None: every pause.
    name: PauseName | None = None


class ResumeOut(BaseModel):
    resumed: list[str]  # the pauses lifted; empty when nothing was paused
    sending: SendingState
