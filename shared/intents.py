"""The intents the product knows, their mode, and the slots a workflow intent cannot start without.

Shared by the intent service (to ask for what is missing) and the workflow service (to start only
complete requests), so both apply one rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import Mode, Slots


@dataclass(frozen=True)
class IntentSpec:
    name: str
    mode: Mode
    description: str
    needs_audience: bool = False

    def missing_slots(self, slots: Slots) -> list[str]:
        """Human-readable names of what is missing before this intent can run."""
        if self.needs_audience and not (
            slots.skills or slots.location or slots.seniority or slots.min_years_experience
        ):
            return ["who to contact (skills, location or seniority)"]
        return []


INTENTS: dict[str, IntentSpec] = {
    "inference": IntentSpec("inference", "simple", "a question or one-shot writing task"),
    "email_campaign": IntentSpec(
        "email_campaign", "workflow", "email a set of candidates about a job", needs_audience=True
    ),
}
