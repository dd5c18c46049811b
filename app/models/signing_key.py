from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class SigningKey(Model):
    # The JWT `kid`. The private half is stored encrypted under a key derived from SECRET_KEY.
    id = fields.CharField(max_length=64, primary_key=True)
    algorithm = fields.CharField(max_length=16, default="Ed25519")
    private_key = fields.TextField()
    public_jwk: fields.JSONField[dict[str, Any]] = fields.JSONField()
    created_at = fields.DatetimeField(db_index=True)
    # Set when a newer key takes over: still published and accepted until then.
    retires_at = fields.DatetimeField(null=True)

    class Meta:
        table = "signing_keys"
