"""Ask the inference service's language model about a message the classifier is unsure of."""

from __future__ import annotations

import logging

from services.intent.domain import model_extraction
from services.intent.domain.model_extraction import ModelExtraction
from services.intent.domain.vocabulary import Vocabulary
from shared.contracts.inference import ChatMessage, InferCommand, ModelRequest
from shared.rpc import ServiceClient, ServiceTimeout
from shared.settings import Settings

log = logging.getLogger(__name__)


class ModelFallback:
    def __init__(self, client: ServiceClient, settings: Settings, vocabulary: Vocabulary) -> None:
        self._client = client
        self._settings = settings
        self._vocabulary = vocabulary

    @property
    def enabled(self) -> bool:
        return self._settings.intent_model_fallback and self._settings.llm_configured

    async def extract(self, message: str, correlation_id: str) -> ModelExtraction | None:
        """The model's validated reading of `message`, or None (no model, no answer in time, or
        an answer that does not fit the schema): then the user is asked instead."""
        if not self.enabled or not self._settings.llm_model:
            return None
        request = ModelRequest.build(
            [
                ChatMessage(role="system", content=model_extraction.INSTRUCTIONS),
                ChatMessage(role="user", content=message),
            ],
            self._settings.llm_model,
            temperature=0.0,
            max_tokens=300,
        )
        command = InferCommand(
            request=request, purpose="intent_extraction", correlation_id=correlation_id
        )
        try:
            reply = await self._client.request(
                "inference", command, timeout=self._settings.intent_model_timeout_seconds
            )
        except ServiceTimeout:
            log.warning("the language model did not answer in time; asking the user instead")
            return None
        if not reply.ok:
            log.warning("the language model failed (%s); asking the user instead", reply.error)
            return None
        extraction = model_extraction.parse(str(reply.data.get("answer", "")), self._vocabulary)
        if extraction is None:
            log.warning("the language model's answer did not fit the schema; asking the user")
        return extraction
