from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.models.device import Device


class PresenceChange(Model):
    # An online ⇄ offline transition seen by the presence sweep. Kept apart from the audit
    # log: a flaky network would otherwise drown the changes people made.

    id = fields.UUIDField(primary_key=True)
    device: fields.ForeignKeyRelation[Device] = fields.ForeignKeyField(
        "models.Device", related_name="presence_changes", on_delete=fields.CASCADE
    )
    device_id: UUID
    online = fields.BooleanField()
    at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "presence_changes"
        ordering = ("-at", "-id")
