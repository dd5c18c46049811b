"""Keyset pagination: newest first, an opaque cursor that survives inserts between pages.

No page counts the rows before it: each one starts where the cursor points, along an index.
`newest_first_kept` serves lists whose last condition is not in the database (presence, in
the presence store): it walks the database's order in growing batches and keeps the rows a
callback chooses, so a page costs a few batches however many rows match.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Collection
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
# Rows read per step of a walk: the first step is enough when a few in ten rows are kept;
# each later one is four times larger, so a rare match costs a handful of round trips.
FIRST_BATCH = 128
MAX_BATCH = 4096

# The walked rows as `values()` gives them: at least `id` and the time field.
Row = dict[str, Any]
Keep = Callable[[list[Row]], Awaitable[Collection[Any]]]


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


def _older_than(time_field: str, at: datetime, row_id: UUID) -> Q:
    """Rows after (at, row_id) in newest-first order. The leading `<=` is what an index on
    the time field can seek to; the rest breaks ties between rows of the same instant."""
    up_to: dict[str, Any] = {f"{time_field}__lte": at}
    older: dict[str, Any] = {f"{time_field}__lt": at}
    return Q(**up_to) & (Q(**older) | Q(id__lt=row_id))


def _after(query: QuerySet[M], time_field: str, cursor: str | None) -> QuerySet[M]:
    if not cursor:
        return query
    return query.filter(_older_than(time_field, *decode_cursor(cursor)))


def _page(rows: list[M], time_field: str, limit: int) -> Page[M]:
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(getattr(rows[-1], time_field), rows[-1].pk) if more else None
    return Page(rows, next_cursor)


async def newest_first(
    query: QuerySet[M], *, time_field: str, cursor: str | None, limit: int
) -> Page[M]:
    rows = (
        await _after(query, time_field, cursor).order_by(f"-{time_field}", "-id").limit(limit + 1)
    )
    return _page(rows, time_field, limit)


async def newest_first_kept(
    query: QuerySet[M],
    *,
    time_field: str,
    cursor: str | None,
    limit: int,
    keep: Keep,
    fields: tuple[str, ...] = (),
) -> Page[M]:
    """A page of the rows of `query` that `keep` chooses, in `newest_first` order.

    `keep` is given each batch of walked rows (`id`, the time field and `fields`) and answers
    the ids it keeps; only the kept rows of the page are then read in full, through `query`.
    """
    walked = _after(query, time_field, cursor)
    kept: list[Row] = []
    batch = FIRST_BATCH
    while len(kept) <= limit:
        rows: list[Row] = (
            await walked.order_by(f"-{time_field}", "-id")
            .limit(batch)
            .values("id", time_field, *fields)
        )
        if not rows:
            break
        chosen = await keep(rows)
        kept.extend(row for row in rows if row["id"] in chosen)
        if len(rows) < batch:
            break
        last = rows[-1]
        walked = query.filter(_older_than(time_field, last[time_field], last["id"]))
        batch = min(batch * 4, MAX_BATCH)
    ids = [row["id"] for row in kept[:limit]]
    items = await query.filter(id__in=ids).order_by(f"-{time_field}", "-id") if ids else []
    if len(kept) <= limit:
        return Page(items, None)
    # The cursor is the last kept row as walked: a row gone since still marks the place.
    last_kept = kept[limit - 1]
    return Page(items, encode_cursor(last_kept[time_field], last_kept["id"]))
