"""One message of a conversation in, one answer out, whatever the message wants.

The intent service reads the message (with the conversation's earlier turns: follow-ups, answers
to questions); then the gateway answers by its intent:

- a question for the model: the inference service (the conversation so far as context), streamed
  when asked;
- a candidate search, a campaign status question: the campaign service, from our own data;
- an email campaign: the intent service already started its workflow; the answer links to it;
- an answer to a run's question: the run goes on; a request that needs more: the question back.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any, Literal

import asyncpg
from fastapi import Request
from pydantic import BaseModel, Field

from services.gateway import conversations
from services.gateway.api_keys import Principal
from services.gateway.routes_inference import InferenceRequest, answer
from services.gateway.services import ask
from services.gateway.sse import Events
from shared.contracts.campaign import (
    CampaignStatusAnswer,
    CampaignStatusCommand,
    CandidateSearchAnswer,
    SearchCandidatesCommand,
)
from shared.contracts.inference import ChatMessage, InferenceResult
from shared.contracts.intent import DetectIntentCommand, IntentResult
from shared.rpc import ServiceClient

AnswerKind = Literal["answer", "search", "campaign_status", "run_started", "run_input", "question"]

ANSWERED_RUN = "answer"  # the intent of a message that answers a run's question


class RunLink(BaseModel):
    run_id: uuid.UUID
    url: str = Field(..., description="The run: GET it for its state.")
    events_url: str = Field(..., description="Its progress as Server-Sent Events.")

    @classmethod
    def to(cls, run_id: uuid.UUID) -> RunLink:
        url = f"/api/workflows/{run_id}"
        return cls(run_id=run_id, url=url, events_url=f"{url}/events")


class ChatAnswer(BaseModel):
    """One turn's answer. `text` is what a chat shows; the field named by `kind` has the rest."""

    conversation_id: str
    turn: int = Field(..., description="The turn's number in the conversation, from 1.")
    kind: AnswerKind = Field(
        ...,
        description="answer: the model's (in `model_answer`); search: candidates from our "
        "data (`search`); campaign_status: `campaign_status`; run_started: a campaign's "
        "workflow started (`run`); run_input: the message answered a run's question (`run`); "
        "question: what the assistant needs to know first.",
    )
    text: str
    intent: IntentResult
    model_answer: InferenceResult | None = None
    search: CandidateSearchAnswer | None = None
    campaign_status: CampaignStatusAnswer | None = None
    run: RunLink | None = None


class Chat:
    """One message's way through the services, for the user of the calling key."""

    def __init__(self, request: Request, client: ServiceClient, principal: Principal) -> None:
        self.request = request
        self.client = client
        self.principal = principal
        self.user = principal.user
        self.owner = conversations.Owner.of(principal)
        self.pool: asyncpg.Pool = request.app.state.pool

    async def conversation_for(self, conversation_id: str | None, message: str) -> str:
        """The caller's conversation (NoConversation for another's or none), or a new one."""
        if conversation_id is None:
            return await conversations.start(self.pool, self.owner, message)
        await conversations.require_owned(self.pool, conversation_id, self.owner)
        return conversation_id

    async def detect(self, conversation_id: str, message: str) -> IntentResult:
        command = DetectIntentCommand(
            message=message,
            conversation_id=conversation_id,
            requested_by=self.user,
            team=self.principal.team,
        )
        return IntentResult.model_validate(await ask(self.client, "intent", command))

    async def reply(
        self, conversation_id: str, message: str, intent: IntentResult, stream: bool
    ) -> ChatAnswer | Events:
        """The answer to a detected message, stored as the conversation's next turn; a streamed
        model answer: its events, ending with `done` (the stored answer)."""
        if intent.intent == "inference" and not intent.needs_clarification:
            body = await self._model_question(conversation_id, message, stream)
            answered = await answer(body, self.request, self.client, self.user)
            if isinstance(answered, InferenceResult):
                return await self._store(
                    conversation_id, message, intent, "answer", answered.answer,
                    model_answer=answered,
                )  # fmt: skip
            return self._streamed(conversation_id, message, intent, answered)
        kind, text, parts = await self._from_data(message, intent)
        return await self._store(conversation_id, message, intent, kind, text, **parts)

    async def _from_data(
        self, message: str, intent: IntentResult
    ) -> tuple[AnswerKind, str, dict[str, Any]]:
        if intent.needs_clarification:
            return "question", intent.clarification_question or "", {}
        if intent.intent == ANSWERED_RUN and intent.workflow_id is not None:
            run = RunLink.to(intent.workflow_id)
            return "run_input", "Thanks: the campaign goes on with your answer.", {"run": run}
        if intent.intent == "candidate_search":
            command = SearchCandidatesCommand(slots=intent.slots)
            found = CandidateSearchAnswer.model_validate(
                await ask(self.client, "campaign", command)
            )
            return "search", found.summary, {"search": found}
        if intent.intent == "campaign_status":
            status_command = CampaignStatusCommand(
                requested_by=self.user,
                slots=intent.slots,
                message=message,
                team=self.principal.team_filter,  # whose campaigns a status question finds
            )
            status = CampaignStatusAnswer.model_validate(
                await ask(self.client, "campaign", status_command)
            )
            kind: AnswerKind = "campaign_status" if status.campaign is not None else "question"
            return kind, status_text(status), {"campaign_status": status}
        assert intent.workflow_id is not None, f"{intent.intent} starts a workflow"
        run = RunLink.to(intent.workflow_id)
        text = (
            "Started the campaign: I'll find the candidates and draft an email to each for your "
            f"review. Follow it at {run.url}."
        )
        return "run_started", text, {"run": run}

    async def _model_question(
        self, conversation_id: str, message: str, stream: bool
    ) -> InferenceRequest:
        """The message, after the conversation's last turns (for "and in German?")."""
        earlier = await conversations.turns(self.pool, conversation_id, conversations.HISTORY_TURNS)
        messages: list[ChatMessage] = []
        for turn in earlier:
            text = str(turn.answer.get("text") or "").strip()
            if text:
                messages.append(ChatMessage(role="user", content=turn.message))
                messages.append(ChatMessage(role="assistant", content=text))
        messages.append(ChatMessage(role="user", content=message))
        return InferenceRequest(messages=messages, stream=stream, conversation_id=conversation_id)

    async def _streamed(
        self, conversation_id: str, message: str, intent: IntentResult, events: Events
    ) -> Events:
        async with contextlib.aclosing(events):
            async for name, data in events:
                if name != "done":
                    yield name, data
                    continue
                result = InferenceResult.model_validate(data)
                stored = await self._store(
                    conversation_id, message, intent, "answer", result.answer,
                    model_answer=result,
                )  # fmt: skip
                yield "done", stored.model_dump(mode="json")

    async def _store(
        self,
        conversation_id: str,
        message: str,
        intent: IntentResult,
        kind: AnswerKind,
        text: str,
        **parts: Any,
    ) -> ChatAnswer:
        answered = ChatAnswer(
            conversation_id=conversation_id, turn=0, kind=kind, text=text, intent=intent, **parts
        )
        data = answered.model_dump(mode="json", exclude={"turn"})
        number = await conversations.add_turn(self.pool, conversation_id, message, kind, data)
        return answered.model_copy(update={"turn": number})


def status_text(status: CampaignStatusAnswer) -> str:
    """The status answer in a sentence or two."""
    if status.campaign is not None:
        view = status.campaign
        counts = view.counts
        return (
            f"{view.name} ({view.status}): {counts.total} emails, {counts.sent} sent, "
            f"{counts.opened} opened, {counts.replied} replied. {status.waiting_for or ''}"
        ).strip()
    if status.matches == 0:
        return "None of your campaigns matches that."
    names = "; ".join(option.name for option in status.options)
    return f"{status.question or 'Which campaign do you mean?'} ({names})"
