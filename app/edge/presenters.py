"""How rows look on the wire (camelCase, ISO times). Shared by the API and the console."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.models import AuditEvent, Device, DeviceToken, PairingSession, PresenceChange, User
from app.services import devices
from app.services.credentials import IssuedCredentials
from app.services.pairing_sessions import effective_state
from app.settings import Settings


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def user_view(user: User) -> dict[str, Any]:
    return {"userId": str(user.id), "email": user.email, "role": user.role.value}


def token_view(token: DeviceToken) -> dict[str, Any]:
    return {
        "tokenId": str(token.id),
        "state": token.state.value,
        "issuedAtIso": iso(token.issued_at),
        "expiresAtIso": iso(token.expires_at),
    }


def device_view(
    device: Device, *, now: datetime, settings: Settings, with_tokens: bool = False
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "deviceId": str(device.id),
        "kind": device.kind.value,
        "label": device.label,
        "platform": device.platform,
        "model": device.model,
        "osVersion": device.os_version,
        "appVersion": device.app_version,
        "apnsEnvironment": device.apns_environment,
        "pushTokenLast8": device.push_token[-8:] if device.push_token else None,
        "capabilities": list(device.capabilities),
        "ownerUserId": str(device.owner_id),
        "ownerEmail": device.owner.email,
        "state": device.state.value,
        "online": devices.is_online(device, now, settings),
        "lastSeenAtIso": iso(device.last_seen_at),
        "registeredAtIso": iso(device.registered_at),
        "deregisteredAtIso": iso(device.deleted_at),
    }
    if with_tokens:
        tokens = sorted(device.tokens, key=lambda t: t.issued_at, reverse=True)
        view["tokens"] = [token_view(token) for token in tokens]
    return view


def app_device_view(device: Device, *, this_device: str | None = None) -> dict[str, Any]:
    """An admin's connected phone, as the Mobile app page and its API list it."""
    return {
        "deviceId": str(device.id),
        "deviceName": device.label,
        "platform": device.platform,
        "deviceIdentifier": device.device_identifier,
        "lastActiveAtIso": iso(device.last_seen_at),
        "connectedAtIso": iso(device.registered_at),
        "ip": device.last_ip,
        "thisDevice": str(device.id) == this_device,
    }


def presence_change_view(change: PresenceChange) -> dict[str, Any]:
    return {"online": change.online, "atIso": iso(change.at)}


def audit_view(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "atIso": iso(event.at),
        "action": event.action,
        "actor": {"type": event.actor_type, "id": event.actor_id},
        "target": {"type": event.target_type, "id": event.target_id},
        "metadata": event.metadata,
    }


def pairing_session_view(session: PairingSession, *, now: datetime) -> dict[str, Any]:
    view: dict[str, Any] = {
        "pairingSessionId": str(session.id),
        "state": effective_state(session, now).value,
        "expiresAtIso": iso(session.expires_at),
        "failedAttempts": session.failed_attempts,
    }
    pending = session.pending_device
    if pending:
        view["pendingDevice"] = {
            key: pending.get(key)
            for key in ("label", "platform", "model", "osVersion", "appVersion", "ip", "checkCode")
        } | {"capabilities": pending.get("capabilities", [])}
    if session.device_id is not None:
        view["deviceId"] = str(session.device_id)
    return view


def credentials_view(issued: IssuedCredentials) -> dict[str, Any]:
    return {
        "deviceId": str(issued.device.id),
        "deviceToken": issued.device_token,
        "deviceSecret": issued.device_secret,
        "expiresAtIso": iso(issued.token.expires_at),
        "capabilities": list(issued.device.capabilities),
    }
