"""How an answer is served: which cache modes read and write the cache, and what the caller is told
of an answer, from the cache (it cost nothing) or from a model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.inference.domain.completions import Completion
from services.inference.domain.cost import Prices, cost_of_attempts
from shared.contracts.inference import CachedAnswer, CacheMode


def reads_cache(mode: CacheMode) -> bool:
    """Only `default` may answer from the cache; `bypass` and `refresh` always ask a model."""
    return mode == "default"


def writes_cache(mode: CacheMode) -> bool:
    """`bypass` leaves the cache as it was; `default` and `refresh` store the model's answer."""
    return mode != "bypass"


@dataclass(frozen=True)
class Outcome:
    answer: CachedAnswer
    cached: bool
    cost: float

    @classmethod
    def from_cache(cls, answer: CachedAnswer) -> Outcome:
        return cls(answer, cached=True, cost=0.0)

    @classmethod
    def from_model(cls, completion: Completion, prices: Prices) -> Outcome:
        answer = CachedAnswer(
            answer=completion.text, model=completion.model, usage=completion.usage
        )
        return cls(answer, cached=False, cost=cost_of_attempts(completion.attempts, prices))

    def reply_data(self) -> dict[str, Any]:
        """The `infer` reply's data: an `InferenceResult` but for the gateway's `latency_ms`."""
        return {**self.answer.model_dump(mode="json"), "cost": self.cost, "cached": self.cached}
