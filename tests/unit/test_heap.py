"""shared.heap: what a process built at startup is exempt from garbage collection afterwards."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shared.heap import freeze_startup_objects


class Node:
    def __init__(self) -> None:
        self.other: object = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def tracked(obj: object) -> bool:
    return any(candidate is obj for candidate in gc.get_objects())


@pytest.mark.usefixtures("unfrozen")
def test_startup_garbage_is_collected_and_what_lives_is_frozen() -> None:
    kept = Node()
    garbage = Node()
    garbage.other = garbage  # a cycle: only a collection frees it
    gone = weakref.ref(garbage)
    del garbage
    assert tracked(kept)

    freeze_startup_objects()

    assert gone() is None  # collected, not frozen for ever
    assert not tracked(kept)  # frozen: the collector no longer walks it
    assert tracked(Node())  # what is made afterwards is collected as usual
