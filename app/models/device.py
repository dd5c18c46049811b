from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from tortoise import fields
from tortoise.models import Model

from app.models.kinds import Kind
from statemachines import DeviceState

if TYPE_CHECKING:
    from app.models.device_token import DeviceToken
    from app.models.user import User


class Device(Model):
    id = fields.UUIDField(primary_key=True)
    kind = fields.CharEnumField(Kind, max_length=16, db_index=True)
    state = fields.CharEnumField(
        DeviceState, max_length=24, default=DeviceState.active, db_index=True
    )
    label = fields.CharField(max_length=120)
    platform = fields.CharField(max_length=16, db_index=True)
    model = fields.CharField(max_length=64, default="")
    os_version = fields.CharField(max_length=64, default="")
    app_version = fields.CharField(max_length=64, default="")
    apns_environment = fields.CharField(max_length=16, null=True)
    push_token = fields.CharField(max_length=200, null=True)
    capabilities: fields.JSONField[list[str]] = fields.JSONField(default=list)
    # Admin-app connections: the phone's own identifier, as the app reports it.
    device_identifier = fields.CharField(max_length=128, null=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="devices", on_delete=fields.RESTRICT
    )
    owner_id: UUID
    registered_at = fields.DatetimeField(db_index=True)
    # No index: the last-seen flush rewrites this for every online device, and with no index
    # on it those writes are heap-only (migration 0012).
    last_seen_at = fields.DatetimeField(null=True)
    # What the presence sweep last recorded; `online` itself is derived from `last_seen_at`.
    reported_online = fields.BooleanField(default=False)
    last_ip = fields.CharField(max_length=64, null=True)
    deleted_at = fields.DatetimeField(null=True, db_index=True)
    # Set when one credential pair was used from two app installs (`device.clone_suspected`).
    clone_suspected_at = fields.DatetimeField(null=True, db_index=True)

    tokens: fields.ReverseRelation[DeviceToken]

    class Meta:
        table = "devices"
