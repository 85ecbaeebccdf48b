"""`python -m deploy.k8s.topics --replication-factor 3`: create the shared Kafka topics that do not
exist yet, with the partition counts of shared/topics.py (KAFKA_TOPIC_PARTITIONS for most) and the
replication factor given; the Kubernetes Job `create-topics` runs it with an administrative login
(the `KAFKA_*` settings of its environment). Topics that exist are left as they are."""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from shared.broker import client_options, partition_count
from shared.settings import Settings, get_settings
from shared.topics import ALL_TOPICS


def missing_topics(settings: Settings, existing: set[str], replication: int) -> list[NewTopic]:
    return [
        NewTopic(spec.name, partition_count(settings, spec), replication)
        for spec in ALL_TOPICS
        if spec.name not in existing
    ]


async def create_topics(settings: Settings, replication: int) -> list[str]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        wanted = missing_topics(settings, set(await admin.list_topics()), replication)
        for topic in wanted:  # one at a time: a concurrent creator must not fail the others
            response = await admin.create_topics([topic])
            for name, code, *message in response.topic_errors:
                if code and for_code(code) is not TopicAlreadyExistsError:
                    detail = f": {message[0]}" if message and message[0] else ""
                    raise RuntimeError(
                        f"Kafka refused to create topic {name} ({for_code(code).__name__}{detail})"
                    )
        return [topic.name for topic in wanted]
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.k8s.topics", description=__doc__)
    parser.add_argument("--replication-factor", type=int, default=3)
    args = parser.parse_args(argv)
    created = asyncio.run(create_topics(get_settings(), args.replication_factor))
    print(f"created topics: {', '.join(created)}" if created else "every topic exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
