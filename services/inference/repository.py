"""PostgreSQL access for the inference service: token accounting (`inference.model_calls`)."""

from __future__ import annotations

import asyncpg

from services.inference.models import Attempt
from shared.inference import InferCommand, cost_of


async def record_attempts(
    pool: asyncpg.Pool,
    command: InferCommand,
    attempts: list[Attempt],
    prices: dict[str, tuple[float, float]],
) -> None:
    """One row per model tried: its tokens and cost, or why it failed."""
    await pool.executemany(
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
                cost_of(a.model, a.usage, prices),
                a.latency_ms,
                "ok" if a.error is None else "error",
                a.error,
                command.requested_by,
                command.conversation_id,
            )
            for a in attempts
        ],
    )
