"""`python -m shared.deadletters list|show|replay`: what is on `events.deadletter`, and putting a
message back once its consumer is fixed.

A dead letter (`shared.contracts.common.DeadLetter`, published by `shared.broker.dead_letter`)
names the source topic, partition and offset of the message a consumer gave up on, the consumer,
the reason, and the payload (as UTF-8 text). `replay` reads the original record at that partition
and offset, so the copy has its exact bytes, key and headers; only when the source topic no longer
holds it (retention) does it fall back to the dead letter's payload, without a key or headers.
The copy carries two more headers, `x-deadletter-id` (the dead letter's event id) and
`x-deadletter-replayed-at`; `replay` looks for a copy with the same id on the target topic (from
the dead letter's time on) and skips a second replay unless `--force`.

Every read uses manual partition assignment without a consumer group: nothing is committed, and
any number of operators can look at once. Settings come from the environment, as the services'.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from shared.broker import client_options, producer_options
from shared.contracts.common import DeadLetter
from shared.settings import Settings, get_settings
from shared.topics import DEAD_LETTER

REPLAY_ID_HEADER = "x-deadletter-id"
REPLAYED_AT_HEADER = "x-deadletter-replayed-at"
_OUR_HEADERS = (REPLAY_ID_HEADER, REPLAYED_AT_HEADER)

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Record:
    """One Kafka record as read back."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: Headers

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", errors="replace")
        return None


@dataclass(frozen=True)
class Letter:
    """A record of `events.deadletter` and the dead letter in it (None: not a DeadLetter)."""

    record: Record
    letter: DeadLetter | None
    error: str | None = None

    @property
    def id(self) -> str:
        return str(self.letter.event_id) if self.letter else f"offset-{self.record.offset}"


class DeadLetterError(Exception):
    """An operator's mistake (no such letter, an ambiguous id): one line, exit code 1."""


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,  # manual assignment: no group, no commits
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(max(settings.startup_timeout_seconds, 5) * 1000),
    )


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    since_ms: int | None = None,
    partitions: Sequence[int] | None = None,
    start_offset: int | None = None,
    stop: Callable[[Record], bool] | None = None,
) -> list[Record]:
    """Every record of `topic` that exists now, from the earliest offset (or from the first
    record at or after `since_ms`, or from `start_offset` in `partitions`), up to the end offsets
    seen at the start; `stop` ends the read at the first record it accepts (returned last)."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        if topic not in await consumer.topics():  # fetches the cluster's metadata
            raise DeadLetterError(f"topic {topic} does not exist")
        # partitions_for_topic reads the client's metadata, which tracks only the topics it uses.
        await consumer._client.add_topic(topic)
        known = consumer.partitions_for_topic(topic)
        if not known:
            raise DeadLetterError(f"topic {topic} does not exist")
        tps = [
            TopicPartition(topic, p) for p in sorted(known) if partitions is None or p in partitions
        ]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        if start_offset is not None:
            for tp in tps:
                consumer.seek(tp, start_offset)
        elif since_ms is not None:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
            for tp in tps:
                at = found.get(tp)
                consumer.seek(tp, at.offset if at is not None else ends[tp])
        else:
            await consumer.seek_to_beginning(*tps)
        records: list[Record] = []
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1_000)
            for tp, messages in batches.items():
                for m in messages:
                    if m.offset >= ends[tp]:
                        break
                    record = Record(
                        m.topic,
                        m.partition,
                        m.offset,
                        m.timestamp,
                        m.key,
                        m.value or b"",
                        [(k, bytes(v)) for k, v in (m.headers or ())],
                    )
                    records.append(record)
                    if stop is not None and stop(record):
                        return records
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return records
    finally:
        await consumer.stop()


async def read_letters(settings: Settings) -> list[Letter]:
    """Every dead letter on the topic, oldest first."""
    letters = []
    for record in await read_topic(settings, DEAD_LETTER.name):
        try:
            letters.append(Letter(record, DeadLetter.model_validate_json(record.value)))
        except ValidationError as exc:
            letters.append(Letter(record, None, f"not a DeadLetter: {exc.error_count()} errors"))
    letters.sort(key=lambda letter: (letter.record.partition, letter.record.offset))
    return letters


def find(letters: list[Letter], ref: str) -> Letter:
    """A letter by its offset on events.deadletter, its event id, or an unambiguous id prefix."""
    ref = ref.strip()
    if ref.isdigit():
        matches = [letter for letter in letters if letter.record.offset == int(ref)]
    else:
        wanted = ref.lower().replace("-", "")
        matches = [
            letter
            for letter in letters
            if letter.letter is not None and letter.letter.event_id.hex.startswith(wanted)
        ]
    if not matches:
        raise DeadLetterError(f"no dead letter {ref!r} on {DEAD_LETTER.name}")
    if len(matches) > 1:
        ids = ", ".join(m.id for m in matches[:5])
        raise DeadLetterError(f"{ref!r} matches {len(matches)} dead letters ({ids}); say more")
    return matches[0]


async def original_record(settings: Settings, letter: DeadLetter) -> Record | None:
    """The message the consumer gave up on, if its source topic still holds it."""
    partition, offset = letter.partition, letter.offset
    if partition is None or offset is None:
        return None
    try:
        records = await read_topic(
            settings,
            letter.source_topic,
            partitions=[partition],
            start_offset=offset,
            stop=lambda record: record.offset >= offset,
        )
    except DeadLetterError:
        return None
    return next((r for r in records if r.offset == offset), None)


async def replays_of(settings: Settings, letter: DeadLetter, topic: str) -> list[Record]:
    """Copies of `letter` already replayed to `topic` (published after the letter was)."""
    since = int(letter.occurred_at.timestamp() * 1000) - 60_000  # clocks differ a little
    try:
        records = await read_topic(settings, topic, since_ms=max(since, 0))
    except DeadLetterError:
        return []
    wanted = str(letter.event_id)
    return [r for r in records if r.header(REPLAY_ID_HEADER) == wanted]


@dataclass(frozen=True)
class Replayed:
    topic: str
    partition: int
    offset: int
    exact: bool  # the original record's bytes, key and headers (not the letter's payload)


async def replay(
    settings: Settings, found: Letter, *, to_topic: str | None = None, force: bool = False
) -> Replayed | list[Record]:
    """Publish the dead letter's original message again; the earlier copies instead when it
    was replayed to that topic before and not `force`."""
    letter = found.letter
    if letter is None:
        raise DeadLetterError(f"offset {found.record.offset} is not a dead letter: {found.error}")
    topic = to_topic or letter.source_topic
    if topic == DEAD_LETTER.name:
        raise DeadLetterError(f"will not replay onto {DEAD_LETTER.name} itself")
    if not force:
        earlier = await replays_of(settings, letter, topic)
        if earlier:
            return earlier
    original = await original_record(settings, letter)
    if original is not None:
        key, value = original.key, original.value
        headers = [(k, v) for k, v in original.headers if k not in _OUR_HEADERS]
    else:
        key, value, headers = None, letter.payload.encode("utf-8"), []
    headers += [
        (REPLAY_ID_HEADER, str(letter.event_id).encode()),
        (REPLAYED_AT_HEADER, datetime.now(UTC).isoformat().encode()),
    ]
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()
    return Replayed(topic, sent.partition, sent.offset, original is not None)


# --- The command ------------------------------------------------------------------------------


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _print_list(letters: list[Letter], topic: str | None, limit: int) -> None:
    if topic:
        letters = [x for x in letters if x.letter is not None and x.letter.source_topic == topic]
    shown = letters[-limit:] if limit > 0 else letters
    print(f"{len(letters)} dead letter(s){f' from {topic}' if topic else ''}", end="")
    print(f", the last {len(shown)} shown" if len(shown) < len(letters) else "")
    if not shown:
        return
    print(f"{'OFFSET':>7}  {'TIME (UTC)':19}  {'ID':36}  {'SOURCE':32}  {'CONSUMER':24}  REASON")
    for item in shown:
        r, d = item.record, item.letter
        if d is None:
            print(
                f"{r.offset:>7}  {_when(r.timestamp_ms):19}  {'-':36}  {'-':32}  {'-':24}  "
                f"{item.error}"
            )
            continue
        source = f"{d.source_topic}[{d.partition}]@{d.offset}"
        print(
            f"{r.offset:>7}  {_when(r.timestamp_ms):19}  {d.event_id!s:36}  {source:32}  "
            f"{_one_line(d.consumer, 24):24}  {_one_line(d.reason, 100)}"
        )


def _payload_text(payload: str) -> str:
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return payload


def _headers_text(headers: Headers) -> str:
    return ", ".join(f"{k}={v.decode('utf-8', errors='replace')}" for k, v in headers) or "none"


async def _show(settings: Settings, found: Letter) -> None:
    r, d = found.record, found.letter
    print(f"offset:        {r.offset} (partition {r.partition} of {DEAD_LETTER.name})")
    print(f"dead-lettered: {_when(r.timestamp_ms)} UTC")
    if d is None:
        print(f"not a dead letter: {found.error}\n{r.value.decode('utf-8', errors='replace')}")
        return
    print(f"id:            {d.event_id}")
    print(f"source topic:  {d.source_topic}")
    print(f"partition:     {d.partition}")
    print(f"offset there:  {d.offset}")
    print(f"consumer:      {d.consumer}")
    print(f"correlation:   {d.correlation_id or '-'}")
    print(f"reason:        {d.reason}")
    original = await original_record(settings, d)
    if original is None:
        print(
            "original:      no longer on the source topic (a replay sends the payload below, "
            "without its key and headers)"
        )
    else:
        key = original.key.decode("utf-8", errors="replace") if original.key else "none"
        print(f"original key:  {key}")
        print(f"headers:       {_headers_text(original.headers)}")
    for copy in await replays_of(settings, d, d.source_topic):
        print(
            f"replayed:      {copy.header(REPLAYED_AT_HEADER)} to {copy.topic}[{copy.partition}]"
            f"@{copy.offset}"
        )
    print("payload:")
    print(_payload_text(d.payload))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    letters = await read_letters(settings)
    if args.command == "list":
        _print_list(letters, args.topic, args.limit)
        return 0
    found = find(letters, args.ref)
    if args.command == "show":
        await _show(settings, found)
        return 0
    result = await replay(settings, found, to_topic=args.to_topic, force=args.force)
    if isinstance(result, list):
        where = ", ".join(
            f"{c.topic}[{c.partition}]@{c.offset} at {c.header(REPLAYED_AT_HEADER)}" for c in result
        )
        print(
            f"skipped: dead letter {found.id} was already replayed ({where}); --force replays "
            "it again"
        )
        return 0
    how = "the original record (key and headers)" if result.exact else "the dead letter's payload"
    print(
        f"replayed dead letter {found.id} to {result.topic}[{result.partition}]@{result.offset}"
        f" from {how}"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared.deadletters",
        description=f"List, show and replay the messages on {DEAD_LETTER.name}.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="the dead letters, oldest first, with reason and source")
    listing.add_argument("--topic", help="only those from this source topic")
    listing.add_argument("--limit", type=int, default=50, help="the last N (default 50; 0: all)")
    show = sub.add_parser("show", help="one dead letter, its original key, headers and payload")
    show.add_argument("ref", help="its offset on events.deadletter, or its id (or id prefix)")
    again = sub.add_parser("replay", help="publish the original message to its topic again")
    again.add_argument("ref", help="its offset on events.deadletter, or its id (or id prefix)")
    again.add_argument("--to-topic", help="publish there instead of the source topic")
    again.add_argument("--force", action="store_true", help="even if it was replayed before")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = get_settings()
        return asyncio.run(_run(settings, args))
    except ValidationError as exc:
        print(f"deadletters: error: invalid settings: {exc}", file=sys.stderr)
        return 2
    except DeadLetterError as exc:
        print(f"deadletters: error: {exc}", file=sys.stderr)
        return 1
    except (KafkaError, OSError, TimeoutError) as exc:
        print(f"deadletters: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
