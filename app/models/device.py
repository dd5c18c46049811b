from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.models.user import User


class DeviceKind(StrEnum):
    SCANNER = "scanner"
    ADMIN_APP = "admin_app"


class Device(Model):
    id = fields.UUIDField(primary_key=True)
    kind = fields.CharEnumField(DeviceKind, max_length=16, db_index=True)
    state = fields.CharField(max_length=24, default="active", db_index=True)
    label = fields.CharField(max_length=120)
    platform = fields.CharField(max_length=16, db_index=True)
    model = fields.CharField(max_length=64, default="")
    os_version = fields.CharField(max_length=64, default="")
    app_version = fields.CharField(max_length=64, default="")
    apns_environment = fields.CharField(max_length=16, null=True)
    push_token = fields.CharField(max_length=200, null=True)
    capabilities = fields.JSONField(default=list)
    # Admin-app connections: the phone's own identifier, as the app reports it.
    device_identifier = fields.CharField(max_length=128, null=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="devices", on_delete=fields.RESTRICT
    )
    registered_at = fields.DatetimeField(db_index=True)
    last_seen_at = fields.DatetimeField(null=True)
    # What the presence sweep last recorded; `online` itself is derived from `last_seen_at`.
    reported_online = fields.BooleanField(default=False)
    last_ip = fields.CharField(max_length=64, null=True)
    deleted_at = fields.DatetimeField(null=True, db_index=True)

    class Meta:
        table = "devices"
