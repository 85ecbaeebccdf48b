"""Every Kafka topic name, its partition count and its key, in one place. Most topics get
KAFKA_TOPIC_PARTITIONS partitions (`partitions=None`); a few need exactly one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int | None  # None: KAFKA_TOPIC_PARTITIONS (shared.broker.partition_count)
    key: str
    description: str


# Public event topics: keyed so that everything about one intent, run or campaign stays in order.
INTENT_DETECTED = TopicSpec(
    "intent.detected",
    None,
    "intent_id",
    "An intent was detected, by the intent service or another system.",
)
WORKFLOW_STEP_COMPLETED = TopicSpec(
    "workflow.step.completed",
    None,
    "run_id",
    "An action finished, ok or failed; the engine advances the run.",
)
WORKFLOW_SIGNALS = TopicSpec(
    "workflow.signals",
    None,
    "run_id",
    "A named event a waiting run may wait for (a human decision); kept if it comes early.",
)
WORKFLOW_RUN_CHANGED = TopicSpec(
    "workflow.run.changed",
    None,
    "run_id",
    "A run changed state: progress for the API's event stream and for other systems.",
)
WORKFLOW_QUESTIONS = TopicSpec(
    "workflow.questions",
    None,
    "run_id",
    "A run started or stopped waiting on a person's answer (a few events a run, at most).",
)
EMAIL_APPROVED = TopicSpec(
    "email.approved",
    None,
    "campaign_id",
    "A reviewer approved an email; the campaign service sends it once.",
)
EMAIL_DELIVERY = TopicSpec(
    "email.delivery",
    None,
    "campaign_id",
    "Delivery events: sent, bounced, opened, clicked, replied, ...",
)
AUDIT_RECORDED = TopicSpec(
    "audit.recorded",
    None,
    "object_id",
    "A decision or change a person made, for the gateway's audit log.",
)
DEAD_LETTER = TopicSpec(
    "events.deadletter",
    1,
    "source_topic",
    "Messages a consumer could not decode or handle, with the reason.",
)

# Request/reply commands from the gateway, one topic per service; replies go to the gateway
# instance's own reply topic named in the `reply_to` header.
SERVICES = ("intent", "inference", "workflow", "campaign")


def command_topic(service: str) -> TopicSpec:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    return TopicSpec(
        f"{service}.commands", None, "correlation_id", f"Commands for the {service} service."
    )


def step_request_topic(owner: str) -> TopicSpec:
    """Step requests for the actions one service owns (the action name's prefix)."""
    return TopicSpec(
        f"workflow.step.requested.{owner}",
        None,
        "run_id",
        f"The workflow engine asks the {owner} service to run one of its actions.",
    )


def reply_topic(instance_id: str, owner: str = "gateway") -> TopicSpec:
    return TopicSpec(
        f"{owner}.replies.{instance_id}", 1, "correlation_id", f"Replies to one {owner} process."
    )


ALL_TOPICS: tuple[TopicSpec, ...] = (
    INTENT_DETECTED,
    WORKFLOW_SIGNALS,
    WORKFLOW_RUN_CHANGED,
    WORKFLOW_QUESTIONS,
    WORKFLOW_STEP_COMPLETED,
    EMAIL_APPROVED,
    EMAIL_DELIVERY,
    AUDIT_RECORDED,
    DEAD_LETTER,
    *(command_topic(s) for s in SERVICES),
    step_request_topic("campaign"),  # the engine creates other owners' topics when it starts
)
