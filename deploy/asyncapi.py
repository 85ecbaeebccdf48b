"""Generate the AsyncAPI document of every service's topics: `python -m deploy.asyncapi`.

`docs/asyncapi.json` is this output; a test fails when the contracts change and the file does not,
so every contract change shows up as a diff.
"""

from __future__ import annotations

import json
import sys
from importlib import import_module
from typing import Any

from faststream.specification import AsyncAPI

from shared.service import VERSION
from shared.settings import Settings

SERVICES = ("intent", "inference", "workflow", "campaign")


def build() -> dict[str, Any]:
    settings = Settings()
    brokers = [import_module(f"services.{s}.app").create_app(settings)[0].broker for s in SERVICES]
    spec = AsyncAPI(
        *brokers,
        title="Recruiter assistant events",
        version=VERSION,
        description="Kafka topics the services consume; payloads are pydantic models in shared/.",
        schema_version="3.0.0",
    )
    document: dict[str, Any] = json.loads(spec.to_specification().to_json())
    document.pop("servers", None)  # the broker address is deployment detail, not contract
    return document


def main() -> int:
    json.dump(build(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
