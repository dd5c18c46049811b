from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.models.user import User
    from app.models.webhook_delivery import WebhookDelivery


class WebhookEndpoint(Model):
    # A receiver of events. Its signing secret is kept encrypted under SECRET_KEY: the server
    # needs it in clear to sign, so a hash would not do.

    id = fields.UUIDField(primary_key=True)
    url = fields.CharField(max_length=2048)
    # Event types, or ["*"] for all of them.
    events: fields.JSONField[list[str]] = fields.JSONField(default=list)
    description = fields.CharField(max_length=200, default="")
    sealed_secret = fields.TextField()
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="webhook_endpoints", null=True, on_delete=fields.SET_NULL
    )
    created_by_id: UUID | None
    created_at = fields.DatetimeField()
    # Set when a delivery failed through the whole retry schedule; nothing more is sent.
    disabled_at = fields.DatetimeField(null=True)

    deliveries: fields.ReverseRelation[WebhookDelivery]

    class Meta:
        table = "webhook_endpoints"
        ordering = ("created_at", "id")
