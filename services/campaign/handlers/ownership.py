"""Teams own campaigns: every command that names a campaign and carries the asking key's `team`
finds only that team's campaign. Another team's answers not_found (a 404, so its ids say
nothing); a command without a team (an admin's) finds any. Checked here, once, for every such
command the service takes, so a new command cannot forget it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from services.campaign.repository import campaigns
from shared.contracts.common import Reply
from shared.service import CommandContext, CommandHandler


def team_scoped(
    handlers: dict[type[BaseModel], CommandHandler],
) -> dict[type[BaseModel], CommandHandler]:
    """`handlers`, those of commands with `campaign_id` and `team` behind the team check."""
    return {
        kind: _owned(handler) if {"campaign_id", "team"} <= kind.model_fields.keys() else handler
        for kind, handler in handlers.items()
    }


def _owned(handler: CommandHandler) -> CommandHandler:
    async def handle(command: Any, context: CommandContext) -> Reply:
        if command.team is not None:
            await campaigns.require_campaign(context.runtime.db, command.campaign_id, command.team)
        return await handler(command, context)

    return handle
