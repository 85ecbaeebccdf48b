"""The language model, as the campaign service reaches it: through the inference service, over
Kafka request/reply (never a model endpoint directly), so caching, retries, cost accounting and
tracing are the inference service's, as for every other caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from shared.contracts.inference import ChatMessage, InferCommand, ModelRequest
from shared.rpc import ServiceClient, ServiceTimeout
from shared.settings import Settings

# One draft is under 150 words; the JSON wrapping adds little.
DRAFT_MAX_TOKENS = 600


class ModelUnavailable(Exception):
    """The model gave no answer (not configured, failed, or too slow)."""


class DraftModel(Protocol):
    async def answer(self, messages: list[ChatMessage], correlation_id: str) -> str:
        """The model's raw answer to `messages`, or ModelUnavailable."""


class InferenceModel:
    """Asks the inference service for a draft's text."""

    def __init__(self, client: Callable[[], ServiceClient | None], settings: Settings) -> None:
        self._client = client  # a provider: the client exists once the service has started
        self._settings = settings

    async def answer(self, messages: list[ChatMessage], correlation_id: str) -> str:
        client = self._client()
        model = self._settings.llm_model
        if client is None or model is None:
            raise ModelUnavailable("no language model is configured")
        # Not ModelRequest.build: its whitespace normalisation suits typed questions (cache hits),
        # while this prompt is ours, and its numbered rules and data block keep their layout.
        request = ModelRequest(
            model=model,
            messages=messages,
            temperature=self._settings.llm_temperature,
            max_tokens=min(DRAFT_MAX_TOKENS, self._settings.llm_max_tokens),
        )
        command = InferCommand(
            request=request, purpose="campaign_draft", correlation_id=correlation_id
        )
        try:
            reply = await client.request(
                "inference", command, timeout=self._settings.inference_timeout_seconds
            )
        except ServiceTimeout as exc:
            raise ModelUnavailable(str(exc)) from exc
        if not reply.ok:
            error = reply.error
            raise ModelUnavailable(f"{error.code}: {error.message}" if error else "no answer")
        return str(reply.data.get("answer", ""))
