from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class IdempotentAnswer(Model):
    # The answer to a request sent with an `Idempotency-Key`, kept for a retry of it. The key
    # and the request are stored only as keyed hashes, the answer only encrypted: it may hold
    # a new credential pair. No answer yet (`status` null) means the first request is in flight.

    id = fields.UUIDField(primary_key=True)
    # HMAC of the operation and the client's key: one answer per key and operation.
    key_hash = fields.CharField(max_length=64, unique=True)
    # HMAC of what identifies the request: method, path, caller and body.
    request_hash = fields.CharField(max_length=64)
    status = fields.IntField(null=True)
    media_type = fields.CharField(max_length=64, null=True)
    sealed_body = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "idempotent_answers"
