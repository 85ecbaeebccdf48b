"""Simple-mode inference contracts, shared by the gateway (which serves cache hits itself) and the
inference service (which calls models): the `infer` command, the normalised request and its cache
key, the cached answer and what a client gets back. The system prompt and the cost rules are the
inference service's own (`services/inference/domain/`)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

# What the gateway needs to know of the inference service's system prompt without its text
# (services/inference/domain/prompt.py; tests/unit/test_inference_domain.py ties them together):
# its version, part of every cache key, so that answers written under an older prompt are no longer
# served; and the tokens it adds to every request, counted against LLM_MAX_INPUT_TOKENS.
SYSTEM_PROMPT_VERSION = "1"
SYSTEM_PROMPT_TOKENS = 82

Role = Literal["system", "user", "assistant"]
CacheMode = Literal["default", "bypass", "refresh"]
CACHE_PREFIX = "llm:answer:"
NOT_CONFIGURED = (
    "no language model is configured: set LLM_MODEL and OPENAI_BASE_URL (an OpenAI-compatible "
    "endpoint such as Ollama or a llama.cpp server), or LLM_MODEL and OPENAI_API_KEY for OpenAI; "
    "see the README"
)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: StrictStr = Field(..., min_length=1, max_length=100_000)


def normalise(text: str) -> str:
    """Whitespace differences do not make a different question."""
    return " ".join(text.split())


class ModelRequest(BaseModel):
    """A request as it is sent to a model, and as it is cached: normalised, model resolved."""

    model_config = ConfigDict(frozen=True)

    model: str
    messages: list[ChatMessage]
    temperature: float = Field(..., ge=0, le=2)
    max_tokens: int = Field(..., ge=1)
    system_prompt_version: str = SYSTEM_PROMPT_VERSION

    @classmethod
    def build(
        cls, messages: list[ChatMessage], model: str, temperature: float, max_tokens: int
    ) -> ModelRequest:
        cleaned = [ChatMessage(role=m.role, content=normalise(m.content)) for m in messages]
        return cls(model=model, messages=cleaned, temperature=temperature, max_tokens=max_tokens)

    def cache_key(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return CACHE_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()

    def with_model(self, model: str) -> ModelRequest:
        return self.model_copy(update={"model": model})


_PIECE = re.compile(r"(?:\S+\s*){1,8}|\s+")


def replay_pieces(text: str) -> list[str]:
    """A cached answer, cut into chunks of up to 8 words for streaming."""
    return _PIECE.findall(text)


def estimate_tokens(messages: list[ChatMessage]) -> int:
    """A tokenizer-free upper estimate (about 4 characters a token, plus framing per message); the
    exact count depends on the model's tokenizer, which is not available offline."""
    return sum(math.ceil(len(m.content) / 3.5) + 4 for m in messages) + SYSTEM_PROMPT_TOKENS


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class CachedAnswer(BaseModel):
    """What the cache holds for one request."""

    answer: str
    model: str
    usage: Usage


class InferenceResult(BaseModel):
    """What a client gets back."""

    answer: str
    model: str = Field(..., description="The model that answered (a fallback, if it had to).")
    usage: Usage
    cost: float = Field(..., description="USD this request cost; 0 when served from the cache.")
    cached: bool
    latency_ms: float


class InferCommand(BaseModel):
    """Ask the inference service to answer (the gateway already missed the cache, or skipped it)."""

    type: Literal["infer"] = "infer"
    request: ModelRequest
    purpose: str = Field("simple_answer", max_length=64, description="For token accounting.")
    cache: CacheMode = "default"
    stream: bool = False
    conversation_id: str | None = None
    requested_by: str | None = None
    correlation_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
