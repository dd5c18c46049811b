from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.models.outbox_event import OutboxEvent
    from app.models.webhook_endpoint import WebhookEndpoint


class WebhookDelivery(Model):
    # One event to one endpoint, attempted until delivered or the retry schedule runs out.

    id = fields.UUIDField(primary_key=True)
    endpoint: fields.ForeignKeyRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "models.WebhookEndpoint", related_name="deliveries", on_delete=fields.CASCADE
    )
    endpoint_id: UUID
    event: fields.ForeignKeyRelation[OutboxEvent] = fields.ForeignKeyField(
        "models.OutboxEvent", related_name="deliveries", on_delete=fields.CASCADE
    )
    event_id: UUID
    attempts = fields.IntField(default=0)
    # When the next attempt is due; null once delivered or failed for good.
    next_attempt_at = fields.DatetimeField(null=True, db_index=True)
    last_status_code = fields.IntField(null=True)
    # Why the last attempt failed, in words safe to show (never the receiver's body).
    last_error = fields.CharField(max_length=200, null=True)
    delivered_at = fields.DatetimeField(null=True)
    failed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "webhook_deliveries"
        unique_together = (("endpoint", "event"),)
        ordering = ("-created_at", "-id")
