"""The workflow definitions every engine runs."""

from __future__ import annotations

from services.workflow.domain.definitions import Definition

DEFINITIONS: list[Definition] = []
