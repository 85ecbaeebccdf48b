"""Decoding the commands one service answers. Each command model has a literal `type`; a service
decodes a command of its own kinds only (one validation, against that kind's model), and answers
`unsupported` for any other kind and `invalid_input` for one that does not fit its model, so the
caller hears at once instead of waiting for its timeout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from shared.contracts.common import Reply, ReplyError

H = TypeVar("H")
MAX_ERROR_CHARS = 500


def command_type(kind: type[BaseModel]) -> str:
    """The `type` a command model declares (its literal default)."""
    field = kind.model_fields.get("type")
    if field is None or not isinstance(field.default, str):
        raise TypeError(f"{kind.__name__} has no literal `type` with a default")
    return field.default


class CommandTable(Generic[H]):
    """A service's commands by their `type`, each with what handles it."""

    def __init__(self, service: str, handlers: Mapping[type[BaseModel], H]) -> None:
        self.service = service
        self._kinds = {command_type(kind): (kind, handler) for kind, handler in handlers.items()}

    @property
    def kinds(self) -> tuple[type[BaseModel], ...]:
        """The command models, for the service's AsyncAPI document."""
        return tuple(kind for kind, _ in self._kinds.values())

    def decode(self, body: Mapping[str, Any]) -> tuple[BaseModel, H] | Reply:
        """The command and its handler, or the error reply that answers it."""
        name = body.get("type")
        found = self._kinds.get(name) if isinstance(name, str) else None
        if found is None:
            return _error("unsupported", f"the {self.service} service does not handle {name!r}")
        kind, handler = found
        try:
            return kind.model_validate(body), handler
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'command'}: {e['msg']}" for e in exc.errors()
            )
            return _error("invalid_input", f"{name}: {details}"[:MAX_ERROR_CHARS])


def _error(code: str, message: str) -> Reply:
    return Reply(ok=False, error=ReplyError(code=code, message=message))
