"""The inference service's plain rules: the system prompt and what the gateway knows of it, the
messages a model is sent, costs, failure codes, cache modes and the reply an answer makes."""

from __future__ import annotations

import hashlib

import pytest

from services.inference.domain.answers import Outcome, reads_cache, writes_cache
from services.inference.domain.completions import Attempt, Completion, ModelFailure
from services.inference.domain.cost import cost_of, cost_of_attempts
from services.inference.domain.prompt import SYSTEM_PROMPT, chat_messages
from shared.contracts.inference import (
    SYSTEM_PROMPT_TOKENS,
    SYSTEM_PROMPT_VERSION,
    CachedAnswer,
    ChatMessage,
    InferenceResult,
    ModelRequest,
    Usage,
    estimate_tokens,
)

# The system prompt's text under each SYSTEM_PROMPT_VERSION. When the prompt changes, bump the
# version in shared/inference.py and add the new text's sha256 here: cached answers written under
# the old prompt must not be served for the new one.
PROMPT_SHA256 = {"1": "26c1b6a980c539515598b80cd64162b7343d87f12b0a6c45779a8ff1d8a6e24d"}
PRICES = {"model-a": (1.0, 2.0), "model-b": (3.0, 4.0)}


def usage(prompt: int, completion: int) -> Usage:
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def test_the_prompt_text_belongs_to_its_version() -> None:
    assert (
        hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest() == PROMPT_SHA256[SYSTEM_PROMPT_VERSION]
    )


def test_the_contract_counts_the_prompt_as_the_service_sends_it() -> None:
    assert len(SYSTEM_PROMPT) // 3 == SYSTEM_PROMPT_TOKENS
    question = ChatMessage(role="user", content="x" * 35)  # 10 tokens and 4 of framing
    assert estimate_tokens([question]) == 14 + len(SYSTEM_PROMPT) // 3


def test_a_model_gets_the_system_prompt_then_the_conversation() -> None:
    conversation = [
        ChatMessage(role="user", content="Who should I call first?"),
        ChatMessage(role="assistant", content="The   strongest match."),
        ChatMessage(role="user", content="Why?"),
    ]
    request = ModelRequest.build(conversation, "model-a", 0.2, 64)
    assert chat_messages(request) == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "Who should I call first?"},
        {"role": "assistant", "content": "The strongest match."},  # normalised by the contract
        {"role": "user", "content": "Why?"},
    ]


def test_cost_is_priced_per_million_tokens() -> None:
    assert cost_of("model-a", usage(30, 6), PRICES) == pytest.approx(42 / 1_000_000)
    assert cost_of("model-b", usage(1_000_000, 500_000), PRICES) == pytest.approx(5.0)


def test_a_model_without_a_price_costs_nothing() -> None:
    assert cost_of("unlisted", usage(1_000, 1_000), PRICES) == 0.0


def test_cost_is_rounded_to_eight_places() -> None:
    assert cost_of("model-a", usage(1, 0), {"model-a": (0.0123456789, 0.0)}) == 1e-08


def test_every_model_tried_counts_and_a_failed_attempt_costs_nothing() -> None:
    attempts = [
        Attempt("model-a", 12.0, error="HTTP 500: down"),
        Attempt("model-b", 30.0, usage(10, 5)),
        Attempt("model-a", 25.0, usage(20, 10)),
    ]
    assert cost_of_attempts(attempts, PRICES) == pytest.approx((10 * 3 + 5 * 4 + 20 + 20) / 1e6)
    assert cost_of_attempts([attempts[0]], PRICES) == 0.0


@pytest.mark.parametrize(
    ("code", "reply_code"),
    [
        ("unavailable", "model_unavailable"),
        ("timeout", "model_timeout"),
        ("invalid_input", "invalid_input"),
    ],
)
def test_a_failure_code_as_the_reply_carries_it(code: str, reply_code: str) -> None:
    assert ModelFailure(code, "no model answered", []).reply_code == reply_code


@pytest.mark.parametrize(
    ("mode", "reads", "writes"),
    [("default", True, True), ("refresh", False, True), ("bypass", False, False)],
)
def test_which_cache_modes_read_and_write(mode: str, reads: bool, writes: bool) -> None:
    assert (reads_cache(mode), writes_cache(mode)) == (reads, writes)  # type: ignore[arg-type]


def test_an_answer_from_a_model_costs_its_attempts() -> None:
    attempts = [Attempt("model-a", 5.0, error="Timeout"), Attempt("model-b", 9.0, usage(10, 5))]
    outcome = Outcome.from_model(Completion("Hello", "model-b", usage(10, 5), attempts), PRICES)
    assert outcome.answer == CachedAnswer(answer="Hello", model="model-b", usage=usage(10, 5))
    assert outcome.cached is False
    assert outcome.cost == pytest.approx(50 / 1e6)


def test_an_answer_from_the_cache_costs_nothing() -> None:
    hit = CachedAnswer(answer="Hello", model="model-a", usage=usage(10, 5))
    assert Outcome.from_cache(hit) == Outcome(hit, cached=True, cost=0.0)


def test_the_reply_is_what_the_gateway_returns_but_its_latency() -> None:
    hit = CachedAnswer(answer="Hello", model="model-a", usage=usage(10, 5))
    attempts = [Attempt("model-a", 9.0, usage(10, 5))]
    completion = Completion("Hello", "model-a", usage(10, 5), attempts)
    data = Outcome.from_model(completion, PRICES).reply_data()
    result = InferenceResult.model_validate({**data, "latency_ms": 1.5})
    assert result.model_dump() == {
        "answer": "Hello",
        "model": "model-a",
        "usage": hit.usage.model_dump(),
        "cost": pytest.approx(20 / 1e6),
        "cached": False,
        "latency_ms": 1.5,
    }
    assert Outcome.from_cache(hit).reply_data()["cached"] is True
