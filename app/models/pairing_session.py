from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.models.console_session import ConsoleSession
    from app.models.device import Device
    from app.models.user import User


class PairingKind(StrEnum):
    SCANNER = "scanner"
    ADMIN_APP = "admin_app"


class PairingSession(Model):
    # One minted one-time code (scanner) or QR token (admin app). Secrets only as hashes.

    id = fields.UUIDField(primary_key=True)
    kind = fields.CharEnumField(PairingKind, max_length=16)
    state = fields.CharField(max_length=24, default="minted", db_index=True)
    # Keyed hash of the one-time code or QR token; the plaintext is shown once and dropped.
    code_hash = fields.CharField(max_length=64, unique=True)
    # S256 challenge of the console proof handed out inside the QR code.
    proof_challenge = fields.CharField(max_length=64, null=True)
    # S256 challenge the device sent; the device alone can prove its verifier.
    device_challenge = fields.CharField(max_length=64, null=True)
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="pairing_sessions", on_delete=fields.CASCADE
    )
    console_session: fields.ForeignKeyNullableRelation[ConsoleSession] = fields.ForeignKeyField(
        "models.ConsoleSession",
        related_name="pairing_sessions",
        null=True,
        on_delete=fields.SET_NULL,
    )
    device: fields.ForeignKeyNullableRelation[Device] = fields.ForeignKeyField(
        "models.Device", related_name="pairing_sessions", null=True, on_delete=fields.SET_NULL
    )
    failed_attempts = fields.IntField(default=0)
    last_polled_at = fields.DatetimeField(null=True)
    pending_device = fields.JSONField(null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)
    resolved_at = fields.DatetimeField(null=True)

    class Meta:
        table = "pairing_sessions"
