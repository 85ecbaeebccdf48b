"""The assistant's conversations in PostgreSQL: who owns one (a user of a team), and its turns
(each message with the answer the client got). Another user's or team's conversation is, to the
caller, no conversation at all; an admin may read any."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.gateway.api_keys import Principal

TITLE_CHARS = 80
HISTORY_TURNS = 10  # turns a question for the model sees of the conversation


class NoConversation(LookupError):
    """No such conversation for this user (it may be another user's)."""


@dataclass(frozen=True)
class Turn:
    turn: int
    message: str
    kind: str
    answer: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    title: str
    turns: int
    created_at: datetime
    updated_at: datetime


def new_conversation_id() -> str:
    """Unguessable: it also names the conversation to the intent service."""
    return f"conv_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class Owner:
    """Whose conversations: a user of a team."""

    user: str
    team: str

    @classmethod
    def of(cls, principal: Principal) -> Owner:
        return cls(principal.user, principal.team)


async def start(pool: asyncpg.Pool, owner: Owner, first_message: str) -> str:
    conversation_id = new_conversation_id()
    title = " ".join(first_message.split())[:TITLE_CHARS]
    await pool.execute(
        "INSERT INTO gateway.conversations (conversation_id, owner, team, title)"
        " VALUES ($1, $2, $3, $4)",
        conversation_id, owner.user, owner.team, title,
    )  # fmt: skip
    return conversation_id


async def require_owned(pool: asyncpg.Pool, conversation_id: str, owner: Owner) -> None:
    if not await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM gateway.conversations"
        " WHERE conversation_id = $1 AND owner = $2 AND team = $3)",
        conversation_id, owner.user, owner.team,
    ):  # fmt: skip
        raise NoConversation(conversation_id)


async def add_turn(
    pool: asyncpg.Pool, conversation_id: str, message: str, kind: str, answer: dict[str, Any]
) -> int:
    """Append a turn; its number (turns answered at once get the next numbers in turn)."""
    async with pool.acquire() as conn, conn.transaction():
        number: int = await conn.fetchval(
            "UPDATE gateway.conversations SET turns = turns + 1, updated_at = now()"
            " WHERE conversation_id = $1 RETURNING turns",
            conversation_id,
        )
        await conn.execute(
            "INSERT INTO gateway.conversation_turns (conversation_id, turn, message, kind, answer)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            conversation_id, number, message, kind, json.dumps({**answer, "turn": number}),
        )  # fmt: skip
    return number


async def conversation(
    pool: asyncpg.Pool, conversation_id: str, owner: Owner | None
) -> Conversation:
    """The conversation, if it is `owner`'s (anyone's for None: an admin reading it)."""
    row = await pool.fetchrow(
        "SELECT conversation_id, title, turns, created_at, updated_at FROM gateway.conversations"
        " WHERE conversation_id = $1 AND ($2::text IS NULL OR (owner = $2 AND team = $3))",
        conversation_id, owner.user if owner else None, owner.team if owner else None,
    )  # fmt: skip
    if row is None:
        raise NoConversation(conversation_id)
    return Conversation(**dict(row))


async def turns(pool: asyncpg.Pool, conversation_id: str, last: int | None = None) -> list[Turn]:
    """The conversation's turns, oldest first (only the `last` few, when given)."""
    rows = await pool.fetch(
        "SELECT turn, message, kind, answer, created_at FROM ("
        "  SELECT * FROM gateway.conversation_turns WHERE conversation_id = $1"
        "  ORDER BY turn DESC LIMIT $2) t ORDER BY turn",
        conversation_id, last,
    )  # fmt: skip
    return [
        Turn(r["turn"], r["message"], r["kind"], json.loads(r["answer"]), r["created_at"])
        for r in rows
    ]


async def owned(pool: asyncpg.Pool, owner: Owner, limit: int) -> list[Conversation]:
    """The user's conversations, the latest active first."""
    rows = await pool.fetch(
        "SELECT conversation_id, title, turns, created_at, updated_at FROM gateway.conversations"
        " WHERE team = $1 AND owner = $2 ORDER BY updated_at DESC, conversation_id LIMIT $3",
        owner.team, owner.user, limit,
    )  # fmt: skip
    return [Conversation(**dict(r)) for r in rows]
