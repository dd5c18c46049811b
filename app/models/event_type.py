from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """Every event a webhook can receive (Standard Webhooks `type`): the only source of names."""

    DEVICE_REGISTERED = "device.registered"
    PAIRING_PENDING_APPROVAL = "pairing.pending_approval"
    DEVICE_ONLINE = "device.online"
    DEVICE_OFFLINE = "device.offline"
    DEVICE_DEREGISTERED = "device.deregistered"
    DEVICE_TOKEN_REVOKED = "device.token.revoked"
    DEVICE_TOKEN_REUSE_DETECTED = "device.token.reuse_detected"
    DEVICE_TOKEN_EXPIRING = "device.token.expiring"
    DEVICE_CLONE_SUSPECTED = "device.clone_suspected"
    APP_DEVICE_CONNECTED = "app.device.connected"
    APP_DEVICE_REVOKED = "app.device.revoked"
    WEBHOOK_TEST = "webhook.test"
