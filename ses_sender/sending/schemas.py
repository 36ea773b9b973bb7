from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_PAUSE_NAME_LENGTH = 64  # the column's size
MAX_RESUME_BODY_BYTES = 4096


class SendingState(BaseModel):
    paused: bool
    reasons: list[str]  # "<name>: <reason>", oldest pause first


class ResumeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # None: every pause.
    name: str | None = Field(None, min_length=1, max_length=MAX_PAUSE_NAME_LENGTH)


class ResumeOut(BaseModel):
    resumed: list[str]  # the pauses lifted; empty when nothing was paused
    sending: SendingState
