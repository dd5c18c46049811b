from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"


class User(Model):
    id = fields.UUIDField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=255)
    role = fields.CharEnumField(Role, max_length=16)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()
    last_login_at = fields.DatetimeField(null=True)

    class Meta:
        table = "users"

    def __str__(self) -> str:
        return self.email
