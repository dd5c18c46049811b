"""Tortoise models, one module per noun, and the vocabulary their fields take."""

from app.models.audit_action import AuditAction
from app.models.audit_event import AuditEvent
from app.models.console_session import ConsoleSession
from app.models.device import Device
from app.models.device_token import DeviceToken
from app.models.event_type import EventType
from app.models.idempotent_answer import IdempotentAnswer
from app.models.kinds import Kind
from app.models.outbox_event import OutboxEvent
from app.models.pairing_attempt import PairingAttempt
from app.models.pairing_session import PairingSession
from app.models.presence_change import PresenceChange
from app.models.signing_key import SigningKey
from app.models.user import Role, User
from app.models.webhook_delivery import WebhookDelivery
from app.models.webhook_endpoint import WebhookEndpoint

__all__ = [
    "AuditAction",
    "AuditEvent",
    "ConsoleSession",
    "Device",
    "DeviceToken",
    "EventType",
    "IdempotentAnswer",
    "Kind",
    "OutboxEvent",
    "PairingAttempt",
    "PairingSession",
    "PresenceChange",
    "Role",
    "SigningKey",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
]
