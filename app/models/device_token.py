from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from tortoise import fields
from tortoise.models import Model

from statemachines import TokenState

if TYPE_CHECKING:
    from app.models.device import Device


class DeviceToken(Model):
    # A long-lived credential pair; `lookup_id` is the public part of `pxd_<lookup>_<random>`.

    id = fields.UUIDField(primary_key=True)
    device: fields.ForeignKeyRelation[Device] = fields.ForeignKeyField(
        "models.Device", related_name="tokens", on_delete=fields.CASCADE
    )
    device_id: UUID
    lookup_id = fields.CharField(max_length=32, unique=True)
    token_hash = fields.CharField(max_length=64)
    secret_hash = fields.CharField(max_length=64)
    state = fields.CharEnumField(
        TokenState, max_length=24, default=TokenState.active, db_index=True
    )
    issued_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    ended_at = fields.DatetimeField(null=True)
    replaced_by_id = fields.UUIDField(null=True)
    # The `installationId` of the app install that first used this pair: a second one means
    # the pair was copied to another install.
    installation_id = fields.CharField(max_length=64, null=True)
    # When `device.token.expiring` was sent for this pair, so it is sent once.
    expiry_notified_at = fields.DatetimeField(null=True)

    class Meta:
        table = "device_tokens"
        # The expiring-soon count and notices look for active pairs by expiry.
        indexes = (("state", "expires_at"),)
