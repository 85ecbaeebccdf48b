"""The request/reply client's correlation, streaming and timeouts, with a broker stand-in."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.contracts.common import PingCommand, Reply
from shared.rpc import ServiceClient, ServiceTimeout


class ScriptedBroker:
    """Answers every publish with the scripted replies, through the client, as Kafka would."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = replies
        self.client: ServiceClient | None = None
        self.published: list[dict[str, Any]] = []

    async def publish(self, message: Any, topic: str, **kwargs: Any) -> None:
        self.published.append({"topic": topic, **kwargs})
        assert self.client is not None
        for reply in self.replies:
            loop = asyncio.get_running_loop()
            loop.call_soon(
                self.client.resolve, kwargs["correlation_id"], reply.model_dump_json().encode()
            )


def client_for(*replies: Reply) -> tuple[ServiceClient, ScriptedBroker]:
    broker = ScriptedBroker(*replies)
    client = ServiceClient(broker, "gateway.replies.test", default_timeout=0.2)  # type: ignore[arg-type]
    broker.client = client
    return client, broker


async def test_a_request_gets_its_last_reply_and_names_where_to_answer() -> None:
    client, broker = client_for(
        Reply(ok=True, partial=True, data={"delta": "a"}), Reply(ok=True, data={"answer": "ab"})
    )
    reply = await client.request("intent", PingCommand())
    assert reply.data == {"answer": "ab"}
    [sent] = broker.published
    assert sent["topic"] == "intent.commands"
    assert sent["reply_to"] == "gateway.replies.test"
    assert sent["key"] == sent["correlation_id"].encode()


async def test_a_stream_yields_partials_then_the_last_reply() -> None:
    client, _ = client_for(
        Reply(ok=True, partial=True, data={"delta": "a"}),
        Reply(ok=True, partial=True, data={"delta": "b"}),
        Reply(ok=True, data={"answer": "ab"}),
    )
    replies = [r async for r in client.stream("inference", PingCommand())]
    assert [r.partial for r in replies] == [True, True, False]


async def test_no_reply_is_a_timeout_and_a_late_reply_is_dropped() -> None:
    client, broker = client_for()
    with pytest.raises(ServiceTimeout, match=r"the campaign service did not answer within 0\.2 s"):
        await client.request("campaign", PingCommand())
    late = broker.published[0]["correlation_id"]
    assert client.resolve(late, Reply(ok=True).model_dump_json().encode()) is False


def test_unknown_service_is_refused_before_sending() -> None:
    client, broker = client_for()
    with pytest.raises(ValueError, match="unknown service 'billing'"):
        asyncio.run(client.request("billing", PingCommand()))
    assert broker.published == []
