from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class AuditEvent(Model):
    # Append-only. Metadata never carries a secret (services pass masked values only).

    id = fields.UUIDField(primary_key=True)
    at = fields.DatetimeField(db_index=True)
    action = fields.CharField(max_length=64, db_index=True)
    actor_type = fields.CharField(max_length=16)
    actor_id = fields.CharField(max_length=64, null=True)
    target_type = fields.CharField(max_length=32, null=True)
    target_id = fields.CharField(max_length=64, null=True, db_index=True)
    metadata: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    ip = fields.CharField(max_length=64, null=True)
    request_id = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "audit_events"
        ordering = ("-at", "-id")
