from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.models.pairing_session import PairingSession


class PairingAttempt(Model):
    # A refused redemption or poll of a live code, shown to the admin who minted it. Kept
    # bounded per code; never what was sent (a wrong proof is still a secret's guess).

    id = fields.UUIDField(primary_key=True)
    session: fields.ForeignKeyRelation[PairingSession] = fields.ForeignKeyField(
        "models.PairingSession", related_name="attempts", on_delete=fields.CASCADE
    )
    session_id: UUID
    at = fields.DatetimeField()
    # `refused`, or `burned` for the attempt that closed the code.
    outcome = fields.CharField(max_length=16)
    # The problem code it was refused with: `invalid_proof`, `rate_limited`, `code_expired`...
    reason = fields.CharField(max_length=64)
    ip = fields.CharField(max_length=64, null=True)
    user_agent = fields.CharField(max_length=256, null=True)

    class Meta:
        table = "pairing_attempts"
        ordering = ("-at", "-id")
        # A code's attempts are read, trimmed and deleted by its session.
        indexes = (("session_id", "at"),)
