from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from tortoise import fields
from tortoise.models import Model

from app.models.kinds import Kind
from statemachines import PairingState

if TYPE_CHECKING:
    from app.models.console_session import ConsoleSession
    from app.models.device import Device
    from app.models.pairing_attempt import PairingAttempt
    from app.models.user import User


class PairingSession(Model):
    # One minted one-time code (scanner) or QR token (admin app). Secrets only as hashes.

    id = fields.UUIDField(primary_key=True)
    kind = fields.CharEnumField(Kind, max_length=16)
    state = fields.CharEnumField(
        PairingState, max_length=24, default=PairingState.minted, db_index=True
    )
    # Keyed hash of the one-time code or QR token; the plaintext is shown once and dropped.
    code_hash = fields.CharField(max_length=64, unique=True)
    # S256 challenge of the console proof handed out inside the QR code.
    proof_challenge = fields.CharField(max_length=64, null=True)
    # S256 challenge the device sent; the device alone can prove its verifier.
    device_challenge = fields.CharField(max_length=64, null=True)
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="pairing_sessions", on_delete=fields.CASCADE
    )
    created_by_id: UUID
    console_session: fields.ForeignKeyNullableRelation[ConsoleSession] = fields.ForeignKeyField(
        "models.ConsoleSession",
        related_name="pairing_sessions",
        null=True,
        on_delete=fields.SET_NULL,
    )
    console_session_id: UUID | None
    device: fields.ForeignKeyNullableRelation[Device] = fields.ForeignKeyField(
        "models.Device", related_name="pairing_sessions", null=True, on_delete=fields.SET_NULL
    )
    device_id: UUID | None
    failed_attempts = fields.IntField(default=0)
    last_polled_at = fields.DatetimeField(null=True)
    pending_device: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)
    resolved_at = fields.DatetimeField(null=True)

    attempts: fields.ReverseRelation[PairingAttempt]

    class Meta:
        table = "pairing_sessions"
