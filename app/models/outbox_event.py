from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class OutboxEvent(Model):
    # Written in the same transaction as the change it tells of, so that no event is lost
    # when a process dies after the commit; fanned out to the subscribed webhook endpoints
    # by a job. Its id is the `webhook-id` every delivery and retry of it carries.

    id = fields.UUIDField(primary_key=True)
    type = fields.CharField(max_length=64, db_index=True)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    occurred_at = fields.DatetimeField(db_index=True)
    # When its deliveries were made; null while it waits for the fan-out job.
    dispatched_at = fields.DatetimeField(null=True, db_index=True)

    class Meta:
        table = "outbox_events"
        ordering = ("occurred_at", "id")
