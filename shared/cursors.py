"""Opaque page cursors: the sort key of a page's last item, so the next page starts after it.
Every list the API pages through (runs, campaigns, a campaign's emails) uses these; a cursor the
API did not hand out is refused as `invalid_input`."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from shared.errors import Refused

NOT_OURS = "the cursor is not one this API returned"


def encode(*key: object) -> str:
    """A cursor for the sort key `key` (datetimes, ints, UUIDs)."""
    raw = "|".join(k.isoformat() if isinstance(k, datetime) else str(k) for k in key)
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_time(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a newest-first list's cursor was made from."""
    try:
        created, item_id = _parts(cursor)
        return datetime.fromisoformat(created), uuid.UUID(item_id)
    except ValueError as exc:
        raise Refused(NOT_OURS) from exc


def decode_rank(cursor: str) -> tuple[int, uuid.UUID]:
    """The (rank, id) a ranked list's cursor was made from."""
    try:
        rank, item_id = _parts(cursor)
        return int(rank), uuid.UUID(item_id)
    except ValueError as exc:
        raise Refused(NOT_OURS) from exc


def _parts(cursor: str) -> list[str]:
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(NOT_OURS) from exc
    if len(parts) != 2:
        raise ValueError(NOT_OURS)
    return parts
