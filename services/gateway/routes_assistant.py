"""The assistant's HTTP API: intent detection (and, later, simple-mode inference)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from services.gateway.api_keys import Principal
from services.gateway.auth import require
from services.gateway.errors import API_ERRORS
from services.gateway.services import Client, ask
from shared.contracts.intent import DetectIntentCommand, IntentResult

router = APIRouter(prefix="/api/ai-assistant", tags=["assistant"], responses=API_ERRORS)
MAX_MESSAGE_CHARS = 4_000


class IntentRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "message": "email all senior Python developers in Berlin about the "
                    "Staff Backend Engineer role",
                    "conversation_id": "c-42",
                }
            ]
        },
    )

    message: StrictStr = Field(
        ..., max_length=MAX_MESSAGE_CHARS, description="The recruiter's message (en, de or es)."
    )
    conversation_id: StrictStr | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Ties messages of one conversation: a reply to a clarification continues it.",
    )

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty or only whitespace")
        return value


@router.post(
    "/intent",
    summary="Detect the mode, intent and slots of a message",
    responses={
        400: {"description": "The body is not JSON"},
        413: {"description": "The body is too large"},
        422: {"description": "A field is missing, empty, too long or of the wrong type"},
        504: {"description": "The intent service did not answer in time"},
    },
)
async def detect_intent(
    body: IntentRequest,
    client: Client,
    principal: Annotated[Principal, Depends(require("assistant"))],
) -> IntentResult:
    """A workflow-mode intent with everything it needs starts its workflow asynchronously; the
    answer's `workflow_id` lets the client follow it at once."""
    command = DetectIntentCommand(
        message=body.message, conversation_id=body.conversation_id, requested_by=principal.user
    )
    return IntentResult.model_validate(await ask(client, "intent", command))
