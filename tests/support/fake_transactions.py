"""Transactions for in-memory fakes: a fake keeps its tables in one `state` object, and a
transaction or savepoint copies it on entry and puts the copy back when its block raises."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from typing import Any, Protocol


class HasState(Protocol):
    state: Any


@contextlib.asynccontextmanager
async def atomic(fake: HasState) -> AsyncIterator[None]:
    """Everything the block changes in `fake.state` is undone if the block raises."""
    saved = copy.deepcopy(fake.state)
    try:
        yield
    except BaseException:
        fake.state = saved
        raise
