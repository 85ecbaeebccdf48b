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

from shared.contracts.audit import AuditRecorded
from shared.contracts.campaign import EmailApproved, EmailDeliveryEvent
from shared.contracts.common import DeadLetter, Event
from shared.contracts.intent import IntentDetected
from shared.contracts.workflow import (
    RunQuestion,
    WorkflowRunChanged,
    WorkflowSignal,
    WorkflowStepCompleted,
    WorkflowStepRequested,
)
from shared.service import VERSION
from shared.settings import Settings
from shared.topics import (
    AUDIT_RECORDED,
    DEAD_LETTER,
    EMAIL_APPROVED,
    EMAIL_DELIVERY,
    INTENT_DETECTED,
    WORKFLOW_QUESTIONS,
    WORKFLOW_RUN_CHANGED,
    WORKFLOW_SIGNALS,
    WORKFLOW_STEP_COMPLETED,
    TopicSpec,
)

SERVICES = ("intent", "inference", "workflow", "campaign")

# The event each event topic carries. The services decode these topics' bodies themselves (one
# message at a time, `shared.broker.raw_body`), so FastStream sees bytes there: the models say
# what the bytes are.
EVENTS: dict[str, type[Event]] = {
    INTENT_DETECTED.name: IntentDetected,
    WORKFLOW_STEP_COMPLETED.name: WorkflowStepCompleted,
    WORKFLOW_SIGNALS.name: WorkflowSignal,
    WORKFLOW_RUN_CHANGED.name: WorkflowRunChanged,
    WORKFLOW_QUESTIONS.name: RunQuestion,
    EMAIL_APPROVED.name: EmailApproved,
    EMAIL_DELIVERY.name: EmailDeliveryEvent,
    AUDIT_RECORDED.name: AuditRecorded,
    DEAD_LETTER.name: DeadLetter,
}
STEP_REQUESTS = "workflow.step.requested."  # + the owner: WorkflowStepRequested
# Event topics no service of this project consumes (other systems and operators do): documented
# as what the project sends.
# (`audit.recorded`'s consumer is the gateway, which is not a FastStream service.)
PUBLISHED_ONLY: tuple[TopicSpec, ...] = (EMAIL_DELIVERY, AUDIT_RECORDED, DEAD_LETTER)


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
    for channel in document["channels"].values():
        channel.pop("servers", None)  # (references to the servers just removed)
    for service, runtime in runtimes.items():
        _describe_commands(document, service, runtime.commands)
    _describe_events(document)
    return document


def event_model(topic: str) -> type[Event] | None:
    if topic.startswith(STEP_REQUESTS):
        return WorkflowStepRequested
    return EVENTS.get(topic)


def _add_schema(document: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    schemas: dict[str, Any] = document["components"]["schemas"]
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _describe_events(document: dict[str, Any]) -> None:
    """Each event topic's payload is its event's JSON schema; a consumed topic without a known
    event fails the generation (and so the contract test), naming the topic."""
    channels: dict[str, Any] = document["channels"]
    messages: dict[str, Any] = document["components"]["messages"]
    for channel in channels.values():
        topic = channel["address"]
        if topic.endswith(".commands"):
            continue
        model = event_model(topic)
        if model is None:
            raise LookupError(f"no event model for topic {topic}: add it to deploy/asyncapi.EVENTS")
        for ref in channel["messages"].values():
            message = messages[ref["$ref"].rsplit("/", 1)[-1]]
            message["payload"] = _add_schema(document, model)
    document["components"]["schemas"].pop("Consume:Message:Payload", None)
    for spec in PUBLISHED_ONLY:
        model = EVENTS[spec.name]
        name = f"{spec.name}:Publish"
        messages[f"{name}:Message"] = {
            "title": f"{name}:Message",
            "payload": _add_schema(document, model),
            "correlationId": {"location": "$message.header#/correlation_id"},
        }
        channels[name] = {
            "address": spec.name,
            "description": f"{spec.description} Key: {spec.key}.",
            "bindings": {"kafka": {"bindingVersion": "0.4.0", "topic": spec.name}},
            "messages": {"Message": {"$ref": f"#/components/messages/{name}:Message"}},
        }
        document["operations"][f"{name}:Send"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/Message"}],
        }


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
