"""Tortoise models, one module per noun."""

from app.models.audit_event import AuditEvent
from app.models.console_session import ConsoleSession
from app.models.device import Device
from app.models.device_token import DeviceToken
from app.models.pairing_session import PairingSession
from app.models.presence_change import PresenceChange
from app.models.signing_key import SigningKey
from app.models.user import User

__all__ = [
    "AuditEvent",
    "ConsoleSession",
    "Device",
    "DeviceToken",
    "PairingSession",
    "PresenceChange",
    "SigningKey",
    "User",
]
