"""Every command that names a campaign or a run carries the asking key's team, so the service
that owns the object can answer another team's request with not_found. A command added without
one would let any team reach every team's objects by id."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest
from pydantic import BaseModel, ValidationError

from shared.contracts import campaign, workflow
from shared.contracts.campaign import GetCampaignCommand
from shared.contracts.workflow import StartWorkflowCommand


def commands(module: ModuleType, naming: str) -> list[type[BaseModel]]:
    return [
        cls
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if name.endswith("Command") and issubclass(cls, BaseModel) and naming in cls.model_fields
    ]


@pytest.mark.parametrize(
    ("module", "naming"), [(campaign, "campaign_id"), (workflow, "run_id")], ids=["campaign", "run"]
)
def test_every_command_naming_an_owned_object_carries_a_team(
    module: ModuleType, naming: str
) -> None:
    found = commands(module, naming)
    assert len(found) >= 4  # the rule is checked on the real commands, not on none
    assert [cls.__name__ for cls in found if "team" not in cls.model_fields] == []
    # None means every team's (an admin's request): never a default team that hides objects.
    assert all(cls.model_fields["team"].default is None for cls in found)


def test_a_team_name_is_checked() -> None:
    command = GetCampaignCommand(campaign_id="7f0c1c8e-0d8b-4a53-9f2c-0a9b8c7d6e5f", team="red")
    assert command.team == "red"
    for bad in ("", "red team", "x" * 65, "-red"):
        with pytest.raises(ValidationError):
            StartWorkflowCommand(workflow_type="email_campaign", team=bad)
