"""What model calls cost in USD, from the price table `LLM_PRICES`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.inference.domain.completions import Attempt
from shared.contracts.inference import Usage

# model -> (USD per million prompt tokens, USD per million completion tokens)
Prices = Mapping[str, tuple[float, float]]


def cost_of(model: str, usage: Usage, prices: Prices) -> float:
    """One call's cost; a model missing from the table costs nothing."""
    prompt_price, completion_price = prices.get(model, (0.0, 0.0))
    total = usage.prompt_tokens * prompt_price + usage.completion_tokens * completion_price
    return round(total / 1_000_000, 8)


def cost_of_attempts(attempts: Iterable[Attempt], prices: Prices) -> float:
    """What answering one request cost: every model tried (failed ones used no tokens)."""
    return round(sum(cost_of(a.model, a.usage, prices) for a in attempts), 8)
