from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    """Every action the audit log records: the only source of action names."""

    USER_CREATED = "user.created"
    USER_SIGNED_IN = "user.signed_in"
    USER_SIGNED_OUT = "user.signed_out"

    PAIRING_CODE_MINTED = "pairing.code.minted"
    PAIRING_CLAIMED = "pairing.claimed"
    PAIRING_APPROVED = "pairing.approved"
    PAIRING_REJECTED = "pairing.rejected"
    PAIRING_CANCELLED = "pairing.cancelled"
    PAIRING_EXPIRED = "pairing.expired"
    PAIRING_BURNED = "pairing.burned"
    PAIRING_REDEEM_FAILED = "pairing.redeem_failed"

    DEVICE_REGISTERED = "device.registered"
    DEVICE_DEREGISTERED = "device.deregistered"
    DEVICE_PUSH_TOKEN_UPDATED = "device.push_token.updated"
    DEVICE_TOKEN_ISSUED = "device.token.issued"
    DEVICE_TOKEN_ROTATED = "device.token.rotated"
    DEVICE_TOKEN_REVOKED = "device.token.revoked"
    DEVICE_TOKEN_EXPIRED = "device.token.expired"
    DEVICE_TOKEN_EXPIRING = "device.token.expiring"
    DEVICE_TOKEN_REUSE_DETECTED = "device.token.reuse_detected"
    DEVICE_TOKEN_REPLAYED_IN_RACE_WINDOW = "device.token.replayed_in_race_window"
    DEVICE_CLONE_SUSPECTED = "device.clone_suspected"

    APP_QR_GENERATED = "app.qr.generated"
    APP_QR_CANCELLED = "app.qr.cancelled"
    APP_EXCHANGE_FAILED = "app.exchange_failed"
    APP_DEVICE_CONNECTED = "app.device.connected"
    APP_DEVICE_REVOKED = "app.device.revoked"
    APP_REFRESH_REUSE_DETECTED = "app.refresh.reuse_detected"
    APP_REFRESH_REPLAYED_IN_RACE_WINDOW = "app.refresh.replayed_in_race_window"

    SIGNING_KEY_ROTATED = "signing_key.rotated"

    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_DISABLED = "webhook.disabled"
    WEBHOOK_TEST_SENT = "webhook.test_sent"
