"""Keyset pagination: newest first, an opaque cursor that survives inserts between pages."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from app.errors import InvalidInput

M = TypeVar("M", bound=Model)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class Page(Generic[M]):
    items: list[M]
    next_cursor: str | None


def encode_cursor(at: datetime, row_id: UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, row_id = raw.split("|", 1)
        return datetime.fromisoformat(at), UUID(row_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("The cursor is not valid.", field="cursor") from exc


async def newest_first(
    query: QuerySet[M], *, time_field: str, cursor: str | None, limit: int
) -> Page[M]:
    if cursor:
        at, row_id = decode_cursor(cursor)
        older: dict[str, Any] = {f"{time_field}__lt": at}
        same_time: dict[str, Any] = {time_field: at}
        query = query.filter(Q(**older) | (Q(**same_time) & Q(id__lt=row_id)))
    rows = await query.order_by(f"-{time_field}", "-id").limit(limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(getattr(rows[-1], time_field), rows[-1].pk) if more else None
    return Page(rows, next_cursor)
