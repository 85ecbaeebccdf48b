"""`python -m shared.deadletters`: an operator lists a message a service could not decode, reads
it, and replays it to its source topic with its original key and headers (once, unless --force)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from shared import deadletters
from shared.broker import producer_options
from shared.settings import Settings
from shared.topics import INTENT_DETECTED
from tests.support.processes import REPO, python_module
from tests.support.stack import StartService, stack_env

pytestmark = pytest.mark.integration


async def command(settings: Settings, *args: str) -> str:
    """Run the command as an operator would, with the services' settings in its environment."""
    done = await asyncio.to_thread(
        subprocess.run,
        python_module("shared.deadletters", *args),
        cwd=REPO,
        env=stack_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def letters_with(
    settings: Settings, marker: str, count: int = 1, timeout: float = 30
) -> list[deadletters.Letter]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [
            x
            for x in await deadletters.read_letters(settings)
            if x.letter is not None and marker in x.letter.payload
        ]
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.3)


async def copies_on_source(
    settings: Settings, letter_id: str, count: int, timeout: float = 15
) -> list[deadletters.Record]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        records = await deadletters.read_topic(settings, INTENT_DETECTED.name)
        copies = [r for r in records if r.header(deadletters.REPLAY_ID_HEADER) == letter_id]
        if len(copies) >= count or asyncio.get_running_loop().time() > deadline:
            return copies
        await asyncio.sleep(0.3)


async def test_list_show_and_replay_a_dead_letter(
    start_service: StartService, prepared: Settings
) -> None:
    start_service("workflow")  # consumes intent.detected
    marker = uuid.uuid4().hex
    key = f"poison-{marker}".encode()
    headers = [
        ("x-test-marker", marker.encode()),
        ("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"),
    ]
    producer = AIOKafkaProducer(**producer_options(prepared))
    await producer.start()
    try:
        await producer.send_and_wait(
            INTENT_DETECTED.name, f"not json {marker}".encode(), key=key, headers=headers
        )
    finally:
        await producer.stop()

    (found,) = await letters_with(prepared, marker)
    assert found.letter is not None
    letter_id = str(found.letter.event_id)

    listed = await command(prepared, "list", "--topic", INTENT_DETECTED.name, "--limit", "0")
    (row,) = [line for line in listed.splitlines() if letter_id in line]
    assert INTENT_DETECTED.name in row
    assert "not a valid IntentDetected" in row  # the reason
    assert row.split()[0] == str(found.record.offset)  # the offset on events.deadletter
    other = await command(prepared, "list", "--topic", "no.such.topic")
    assert letter_id not in other

    shown = await command(prepared, "show", letter_id)
    assert f"not json {marker}" in shown  # the payload
    assert f"source topic:  {INTENT_DETECTED.name}" in shown
    assert "not a valid IntentDetected" in shown
    assert f"original key:  poison-{marker}" in shown
    assert f"x-test-marker={marker}" in shown
    assert shown == await command(prepared, "show", str(found.record.offset))  # by offset too

    replayed = await command(prepared, "replay", letter_id[:13])  # an id prefix is enough
    assert f"replayed dead letter {letter_id} to {INTENT_DETECTED.name}" in replayed
    assert "original record" in replayed
    (copy,) = await copies_on_source(prepared, letter_id, 1)
    assert copy.key == key
    assert copy.value == f"not json {marker}".encode()
    assert [h for h in copy.headers if h[0] in ("x-test-marker", "traceparent")] == headers
    assert copy.header(deadletters.REPLAYED_AT_HEADER)

    # The copy reached the (still unfixed) consumer, which dead-lettered it again.
    again = await letters_with(prepared, marker, count=2)
    assert len(again) == 2
    assert {x.letter.source_topic for x in again if x.letter} == {INTENT_DETECTED.name}

    skipped = await command(prepared, "replay", letter_id)
    assert skipped.startswith(f"skipped: dead letter {letter_id} was already replayed")
    assert "replayed:" in await command(prepared, "show", letter_id)
    assert len(await copies_on_source(prepared, letter_id, 2, timeout=1)) == 1

    forced = await command(prepared, "replay", letter_id, "--force")
    assert "replayed dead letter" in forced
    assert len(await copies_on_source(prepared, letter_id, 2)) == 2


async def test_an_unknown_dead_letter_is_one_line(prepared: Settings) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        python_module("shared.deadletters", "show", "ffffffff-0000"),
        cwd=REPO,
        env=stack_env(prepared),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("deadletters: error: no dead letter 'ffffffff-0000'")
    assert "Traceback" not in done.stderr
