"""What asking the models for one request produced: every model tried, and the answer or why
there is none."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.contracts.inference import Usage

# A failure's code as the reply carries it, for the gateway to map to HTTP (502, 504; 422 as is).
_REPLY_CODES = {"unavailable": "model_unavailable", "timeout": "model_timeout"}


@dataclass(frozen=True)
class Attempt:
    """One model tried, for token accounting (a failed attempt costs nothing)."""

    model: str
    latency_ms: float
    usage: Usage = field(default_factory=Usage)
    error: str | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    usage: Usage
    attempts: list[Attempt]


class ModelFailure(Exception):
    """No model could answer. `code` is `timeout`, `unavailable` or `invalid_input`."""

    def __init__(self, code: str, message: str, attempts: list[Attempt]) -> None:
        super().__init__(message)
        self.code = code
        self.attempts = attempts

    @property
    def reply_code(self) -> str:
        return _REPLY_CODES.get(self.code, self.code)
