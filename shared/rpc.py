"""Request/reply to the services over Kafka, for the gateway and for services that ask others.

FastStream's `broker.request()` works only in its test client, so correlation is ours: each caller
process owns a reply topic (`<owner>.replies.<instance>`), sends a command with `reply_to` and a
correlation id, and hands each reply to the waiting request. Several instances never see each
other's replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator

from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from shared.broker import consumer_options, raw_body
from shared.contracts.common import Reply
from shared.settings import Settings
from shared.topics import TopicSpec, command_topic, reply_topic


class ServiceTimeout(Exception):
    """No reply arrived in time."""

    def __init__(self, service: str, timeout: float) -> None:
        self.service = service
        self.timeout = timeout
        super().__init__(f"the {service} service did not answer within {timeout:g} s")


class ServiceClient:
    def __init__(self, broker: KafkaBroker, reply_topic: str, default_timeout: float) -> None:
        self._broker = broker
        self._reply_topic = reply_topic
        self._default_timeout = default_timeout
        self._pending: dict[str, asyncio.Queue[Reply]] = {}

    async def request(
        self, service: str, command: BaseModel, *, timeout: float | None = None
    ) -> Reply:
        """Send `command` to `service` and wait for its (last) reply, or raise ServiceTimeout."""
        async with contextlib.aclosing(self.stream(service, command, timeout=timeout)) as replies:
            async for reply in replies:
                if not reply.partial:
                    return reply
        raise AssertionError("a stream ends with its last reply")

    async def stream(
        self, service: str, command: BaseModel, *, timeout: float | None = None
    ) -> AsyncGenerator[Reply, None]:
        """Send `command` and yield its replies, partial ones first, ending with the last one.
        ServiceTimeout when `timeout` passes without a reply."""
        wait = timeout if timeout is not None else self._default_timeout
        correlation_id = uuid.uuid4().hex
        replies: asyncio.Queue[Reply] = asyncio.Queue()
        self._pending[correlation_id] = replies
        try:
            await self._broker.publish(
                command,
                command_topic(service).name,
                key=correlation_id.encode(),
                correlation_id=correlation_id,
                reply_to=self._reply_topic,
            )
            while True:
                try:
                    async with asyncio.timeout(wait):  # no task per wait, unlike wait_for
                        reply = await replies.get()
                except TimeoutError as exc:
                    raise ServiceTimeout(service, wait) from exc
                yield reply
                if not reply.partial:
                    return
        finally:
            self._pending.pop(correlation_id, None)

    def resolve(self, correlation_id: str | None, body: bytes) -> bool:
        """Hand a reply (its JSON) to its waiter; False for a late or unknown reply (dropped,
        undecoded)."""
        replies = self._pending.get(correlation_id or "")
        if replies is None:
            return False
        replies.put_nowait(Reply.model_validate_json(body))
        return True


def attach_client(
    broker: KafkaBroker, settings: Settings, owner: str, instance_id: str, default_timeout: float
) -> tuple[ServiceClient, TopicSpec]:
    """A client whose replies come to this process's own reply topic (create the topic before
    the broker starts). The topic is new per instance and read from its start, so no reply can
    slip past before the consumer has its position."""
    replies = reply_topic(instance_id, owner)
    client = ServiceClient(broker, replies.name, default_timeout)

    # The body stays bytes: Reply parses the JSON itself, once (FastStream's decoder would build
    # a dict first), and only for a reply somebody waits for.
    @broker.subscriber(
        replies.name, include_in_schema=False, decoder=raw_body, **consumer_options(settings)
    )
    async def on_reply(body: bytes) -> None:
        # The message from the context, not an injected parameter (resolved in a worker thread).
        client.resolve(broker.context.get_local("message").correlation_id, body)

    return client, replies
