"""What every service's messages share: the versioned `Event` base (an event id, a schema version,
when it happened and a correlation id; when a shape changes, bump `SCHEMA_VERSION` on the class
and register an upcaster from the old version, so consumers keep reading old payloads that are
still on the topics), the `Reply` to a command, `ping`, and dead letters."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# Every key, run, campaign and conversation belongs to a team; this one when nobody said which.
DEFAULT_TEAM = "default"
TEAM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def TeamScope() -> Any:  # noqa: N802 - a field declaration, like pydantic's Field
    """A command's `team`: only an object of this team is found (another team's answers
    not_found, so ids do not leak); None finds every team's (an admin's request)."""
    return Field(
        None,
        pattern=TEAM_PATTERN,
        description="Only this team's objects; none: every team's (admin).",
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Fields every event has. Unknown fields are ignored so producers can add fields first."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    SCHEMA_VERSION: ClassVar[int] = 1
    UPCASTERS: ClassVar[dict[int, Upcaster]] = {}

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Unique per event.")
    schema_version: int = Field(1, ge=1, description="Version of this event's shape.")
    occurred_at: datetime = Field(default_factory=utcnow, description="When it happened (UTC).")
    correlation_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex,
        max_length=128,
        description="Ties together every event caused by one request.",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.UPCASTERS = dict(cls.UPCASTERS)  # each event class owns its upcasters

    @model_validator(mode="before")
    @classmethod
    def _upcast(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        version = int(data.get("schema_version", cls.SCHEMA_VERSION))
        if version > cls.SCHEMA_VERSION:
            raise ValueError(
                f"{cls.__name__} schema_version {version} is newer than this consumer understands "
                f"({cls.SCHEMA_VERSION}); deploy the newer consumer first"
            )
        while version < cls.SCHEMA_VERSION:
            upcaster = cls.UPCASTERS.get(version)
            if upcaster is None:
                raise ValueError(f"{cls.__name__} has no upcaster from schema_version {version}")
            data = {**upcaster(dict(data)), "schema_version": version + 1}
            version += 1
        return {**data, "schema_version": version}

    @classmethod
    def upcaster(cls, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function that turns a payload of `from_version` into the next version."""

        def register(fn: Upcaster) -> Upcaster:
            cls.UPCASTERS[from_version] = fn
            return fn

        return register


class DeadLetter(Event):
    """Published on `events.deadletter`: a message a consumer gave up on, and why."""

    source_topic: str
    partition: int | None = None
    offset: int | None = None
    consumer: str
    reason: str
    payload: str = Field(..., description="The original bytes, decoded as UTF-8 with replacement.")


# --- Commands: request/reply between the gateway and the services -----------------------------


class PingCommand(BaseModel):
    """Ask a service who it is; proves the request/reply path end to end."""

    type: Literal["ping"] = "ping"


class ReplyError(BaseModel):
    code: str = Field(..., examples=["invalid_input", "not_found", "unavailable"])
    message: str


class Reply(BaseModel):
    """What a service answers to a command: data on success, an error with a code otherwise.
    A streaming command sends `partial` replies (chunks) before its last one."""

    ok: bool
    partial: bool = False
    data: dict[str, Any] = Field(default_factory=dict)
    error: ReplyError | None = None


class Pong(BaseModel):
    service: str
    instance_id: str
    version: str
