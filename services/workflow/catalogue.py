"""Which workflow definitions this engine runs: the built-in ones plus the modules named by
WORKFLOW_DEFINITION_MODULES. A module declares its actions (`shared.actions.action`) and lists its
definitions in `DEFINITIONS`; each is checked when it is registered, so a definition that names an
unknown action stops the service at start, not a run later."""

from __future__ import annotations

import importlib

from services.workflow.domain.definitions import Definition, DefinitionError, DefinitionRegistry
from shared.actions import ACTIONS, ActionRegistry
from shared.errors import ConfigurationError
from shared.settings import Settings

BUILTIN_MODULES: tuple[str, ...] = ("services.workflow.builtin",)


def load_definitions(settings: Settings, actions: ActionRegistry = ACTIONS) -> DefinitionRegistry:
    registry = DefinitionRegistry(actions)
    for name in (*BUILTIN_MODULES, *settings.definition_modules):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(
                f"WORKFLOW_DEFINITION_MODULES: cannot import {name!r}: {exc}"
            ) from exc
        if not hasattr(module, "DEFINITIONS"):
            raise ConfigurationError(f"workflow module {name!r} has no DEFINITIONS list")
        definitions: list[Definition] = list(module.DEFINITIONS)
        for definition in definitions:
            try:
                registry.register(definition)
            except DefinitionError as exc:
                raise ConfigurationError(f"workflow module {name!r}: {exc}") from exc
    return registry
