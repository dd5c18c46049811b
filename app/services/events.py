"""Events for webhooks, written to the outbox in the transaction of the change they tell of.

A service that changes something a webhook receiver may care about calls `emit` with the
connection of its own transaction: the event commits with the change or not at all, and a
job fans it out to the subscribed endpoints (`app.services.webhooks`). `data` names what
changed (ids, labels, states, times as ISO 8601): never a secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from app import clock
from app.models import EventType, OutboxEvent


async def emit(
    event_type: EventType, data: dict[str, Any], *, using_db: BaseDBAsyncClient | None = None
) -> OutboxEvent:
    return await OutboxEvent.create(
        type=event_type.value, data=data, occurred_at=clock.now(), using_db=using_db
    )


def iso(value: datetime) -> str:
    """A time as event data carries it: ISO 8601 UTC with a `Z`."""
    return value.isoformat().replace("+00:00", "Z")
