"""The assistant's HTTP API: the chat (one endpoint for every kind of message), its
conversations, and intent detection on its own. Simple-mode inference is `routes_inference`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from services.gateway import conversations
from services.gateway.api_keys import Principal
from services.gateway.auth import require
from services.gateway.chat import Chat, ChatAnswer
from services.gateway.errors import API_ERRORS
from services.gateway.services import Client, ask
from services.gateway.sse import Events, reserved, sse_response
from shared.contracts.intent import DetectIntentCommand, IntentResult

router = APIRouter(prefix="/api/ai-assistant", tags=["assistant"], responses=API_ERRORS)
MAX_MESSAGE_CHARS = 4_000
Assistant = Annotated[Principal, Depends(require("assistant"))]


class Message(BaseModel):
    """A recruiter's message, as the intent and chat endpoints take it."""

    model_config = ConfigDict(extra="forbid")

    message: StrictStr = Field(
        ..., max_length=MAX_MESSAGE_CHARS, description="The recruiter's message (en, de or es)."
    )

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty or only whitespace")
        return value


class IntentRequest(Message):
    model_config = ConfigDict(
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

    conversation_id: StrictStr | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Ties messages of one conversation: a reply to a clarification continues it.",
    )


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
    principal: Assistant,
) -> IntentResult:
    """A workflow-mode intent with everything it needs starts its workflow asynchronously; the
    answer's `workflow_id` lets the client follow it at once."""
    command = DetectIntentCommand(
        message=body.message, conversation_id=body.conversation_id, requested_by=principal.user,
        team=principal.team,
    )  # fmt: skip
    return IntentResult.model_validate(await ask(client, "intent", command))


# ---- The chat -------------------------------------------------------------------------------


class ChatRequest(Message):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"message": "how many senior Go developers in Amsterdam do we have?"},
                {
                    "message": "same but in Munich",
                    "conversation_id": "conv_3f9a0c1d2e4b5a6978c0d1e2",
                },
            ]
        },
    )

    conversation_id: StrictStr | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="A conversation this chat started (its answers carry the id); none: a new one.",
    )
    stream: StrictBool = Field(
        False,
        description="Server-Sent Events: `intent`, then the model's `delta`s (a question for the "
        "model), then `done` with the answer (or `error`).",
    )


class ConversationSummary(BaseModel):
    conversation_id: str
    title: str = Field(..., description="Its first message, shortened.")
    turns: int
    created_at: datetime
    updated_at: datetime


class ConversationView(ConversationSummary):
    messages: list[ChatTurn]


class ChatTurn(BaseModel):
    turn: int
    message: str = Field(..., description="What the user wrote.")
    answer: ChatAnswer
    created_at: datetime


ConversationView.model_rebuild()

NO_CONVERSATION: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such conversation of yours"}
}


@router.post(
    "/chat",
    response_model=ChatAnswer,
    summary="Send a message to the assistant and get its answer, whatever the message asks",
    responses={
        200: {"description": "The answer; with `stream: true`, Server-Sent Events"},
        400: {"description": "The body is not JSON"},
        413: {"description": "The body is too large"},
        422: {"description": "A field is missing, empty, too long or of the wrong type"},
        **NO_CONVERSATION,
        502: {"description": "A service or the model failed"},
        503: {"description": "A question for the model, and no model is configured"},
        504: {"description": "A service did not answer in time"},
    },
)
async def chat(body: ChatRequest, request: Request, client: Client, principal: Assistant) -> Any:
    """A question for the model is answered by it (with the conversation so far); a search or a
    campaign status question from our data; a campaign request starts its workflow (the answer
    links to its progress); a follow-up ("same but in Munich", "email them about the Staff
    Backend role") refers to the conversation's last request; a message may answer a question
    the assistant or a run asked."""
    chat = Chat(request, client, principal)
    async with reserved(request, principal, wanted=body.stream) as slot:  # a stream's place
        try:
            conversation_id = await chat.conversation_for(body.conversation_id, body.message)
        except conversations.NoConversation:
            raise _no_conversation(body.conversation_id) from None
        intent = await chat.detect(conversation_id, body.message)
        answered = await chat.reply(conversation_id, body.message, intent, body.stream)
    if not body.stream:
        assert isinstance(answered, ChatAnswer)
        return answered
    return sse_response(_with_intent(intent, answered), slot)


async def _with_intent(intent: IntentResult, answered: ChatAnswer | Events) -> Events:
    yield "intent", intent.model_dump(mode="json")
    if isinstance(answered, ChatAnswer):
        yield "done", answered.model_dump(mode="json")
        return
    async for name, data in answered:  # closed by sse_response with this generator
        yield name, data


@router.get("/conversations", summary="Your conversations, the latest active first")
async def list_conversations(
    request: Request,
    principal: Assistant,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ConversationSummary]:
    found = await conversations.owned(
        request.app.state.pool, conversations.Owner.of(principal), limit
    )
    return [ConversationSummary.model_validate(c, from_attributes=True) for c in found]


@router.get(
    "/conversations/{conversation_id}",
    summary="A conversation with its turns, oldest first",
    responses=NO_CONVERSATION,
)
async def get_conversation(
    conversation_id: str, request: Request, principal: Assistant
) -> ConversationView:
    pool = request.app.state.pool
    try:
        owner = None if principal.allows("admin") else conversations.Owner.of(principal)
        found = await conversations.conversation(pool, conversation_id, owner)
    except conversations.NoConversation:
        raise _no_conversation(conversation_id) from None
    turns = await conversations.turns(pool, conversation_id)
    return ConversationView(
        **ConversationSummary.model_validate(found, from_attributes=True).model_dump(),
        messages=[_turn(conversation_id, t) for t in turns],
    )


def _turn(conversation_id: str, turn: conversations.Turn) -> ChatTurn:
    answer: dict[str, Any] = {**turn.answer, "conversation_id": conversation_id}
    return ChatTurn(
        turn=turn.turn,
        message=turn.message,
        answer=ChatAnswer.model_validate(answer),
        created_at=turn.created_at,
    )


def _no_conversation(conversation_id: str | None) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no conversation {conversation_id}")
