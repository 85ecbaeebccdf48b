"""PostgreSQL access for the inference service: token accounting (`inference.model_calls`)."""

from __future__ import annotations

import asyncpg

from services.inference.domain.completions import Attempt
from services.inference.domain.cost import Prices, cost_of
from shared.contracts.inference import InferCommand


class ModelCallLog:
    """One row per model tried: its tokens and cost, or why it failed."""

    def __init__(self, pool: asyncpg.Pool, prices: Prices) -> None:
        self._pool = pool
        self._prices = prices

    async def record(self, command: InferCommand, attempts: list[Attempt]) -> None:
        await self._pool.executemany(
            """
            INSERT INTO inference.model_calls
                (correlation_id, purpose, model, prompt_tokens, completion_tokens, cost, cached,
                 latency_ms, status, error, requested_by, conversation_id)
            VALUES ($1, $2, $3, $4, $5, $6, false, $7, $8, $9, $10, $11)
            """,
            [
                (
                    command.correlation_id,
                    command.purpose,
                    a.model,
                    a.usage.prompt_tokens,
                    a.usage.completion_tokens,
                    cost_of(a.model, a.usage, self._prices),
                    a.latency_ms,
                    "ok" if a.error is None else "error",
                    a.error,
                    command.requested_by,
                    command.conversation_id,
                )
                for a in attempts
            ],
        )
