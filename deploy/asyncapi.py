"""Generate the AsyncAPI document of every service's topics: `python -m deploy.asyncapi`.

`docs/asyncapi.json` is this output; a test fails when the contracts change and the file does not,
so every contract change shows up as a diff.
"""

from __future__ import annotations

import json
import sys
from importlib import import_module
from typing import Annotated, Any, Union

from faststream.specification import AsyncAPI
from pydantic import BaseModel, Field, TypeAdapter

from shared.service import VERSION
from shared.settings import Settings

SERVICES = ("intent", "inference", "workflow", "campaign")


def build() -> dict[str, Any]:
    settings = Settings()
    runtimes = {s: import_module(f"services.{s}.app").create_app(settings)[1] for s in SERVICES}
    spec = AsyncAPI(
        *(runtime.broker for runtime in runtimes.values() if runtime.broker is not None),
        title="Recruiter assistant events",
        version=VERSION,
        description="Kafka topics the services consume; payloads are pydantic models in shared/.",
        schema_version="3.0.0",
    )
    document: dict[str, Any] = json.loads(spec.to_specification().to_json())
    document.pop("servers", None)  # the broker address is deployment detail, not contract
    for service, runtime in runtimes.items():
        _describe_commands(document, service, runtime.commands)
    return document


def _describe_commands(
    document: dict[str, Any], service: str, kinds: tuple[type[BaseModel], ...]
) -> None:
    """The service decodes its command topic itself (`shared.commands`), so FastStream sees a
    plain object there: document the commands the service accepts, by their `type`."""
    schemas: dict[str, Any] = document["components"]["schemas"]
    command: Any = Annotated[Union[kinds], Field(discriminator="type")]  # noqa: UP007
    union: TypeAdapter[BaseModel] = TypeAdapter(command)
    schema = union.json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    name = f"{service}.commands:Payload"
    schemas[name] = schema
    message = document["components"]["messages"][f"{service}.commands:OnCommand:SubscribeMessage"]
    message["payload"] = {"$ref": f"#/components/schemas/{name}"}
    schemas.pop("OnCommand:Message:Payload", None)


def main() -> int:
    json.dump(build(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
