"""Reading a consumer group's state from the broker, for tests about how instances share work."""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from shared.broker import client_options
from shared.settings import Settings


async def group_assignment(settings: Settings, group: str) -> dict[str, set[tuple[str, int]]]:
    """Each member of a consumer group (by member id) and the (topic, partition)s it holds, as
    the group's coordinator tells; empty while the group rebalances or has no member."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    members: dict[str, set[tuple[str, int]]] = {}
    for response in responses:
        for described in response.to_object()["groups"]:
            if described["state"] != "Stable":
                return {}
            for member in described["members"]:
                members[member["member_id"]] = _partitions(member["member_assignment"])
    return members


def _partitions(raw: Any) -> set[tuple[str, int]]:
    if not raw:
        return set()
    assignment = ConsumerProtocolMemberAssignment.decode(raw)
    return {(tp.topic, tp.partition) for tp in assignment.partitions()}
