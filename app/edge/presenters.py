"""Rows as their wire views (`app.edge.views`). Shared by the API, which renders the views,
and the console, whose templates read `view.wire()`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from app.edge.views import (
    AppDeviceView,
    AuditActor,
    AuditEventView,
    AuditTarget,
    CredentialsView,
    DeviceView,
    DeviceWithTokensView,
    FleetSummaryView,
    PairingAttemptView,
    PairingSessionView,
    PendingDeviceView,
    PresenceChangeView,
    TokenView,
    UserView,
    WebhookDeliveryView,
    WebhookView,
)
from app.edge.views import iso as iso
from app.models import (
    AuditEvent,
    Device,
    DeviceToken,
    PairingAttempt,
    PairingSession,
    PresenceChange,
    User,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.services import devices, webhooks
from app.services.credentials import IssuedCredentials
from app.services.fleet_summary import FleetSummary
from app.services.pairing_sessions import effective_state
from app.settings import Settings


def user_view(user: User) -> UserView:
    return UserView(user_id=user.id, email=user.email, role=user.role)


def token_view(token: DeviceToken) -> TokenView:
    return TokenView(
        token_id=token.id,
        state=token.state,
        issued_at_iso=token.issued_at,
        expires_at_iso=token.expires_at,
    )


def device_view(device: Device, *, now: datetime, settings: Settings) -> DeviceView:
    """`device.tokens` fetched (its active ones at least)."""
    expires_at = devices.active_credential_expiry(device)
    return DeviceView(
        device_id=device.id,
        kind=device.kind,
        label=device.label,
        platform=device.platform,
        model=device.model,
        os_version=device.os_version,
        app_version=device.app_version,
        apns_environment=device.apns_environment,
        push_token_last8=device.push_token[-8:] if device.push_token else None,
        capabilities=list(device.capabilities),
        owner_user_id=device.owner_id,
        owner_email=device.owner.email,
        state=device.state,
        online=devices.is_online(device, now, settings),
        last_seen_at_iso=device.last_seen_at,
        registered_at_iso=device.registered_at,
        deregistered_at_iso=device.deleted_at,
        credential_expires_at_iso=expires_at,
        credential_expires_soon=expires_at is not None
        and now < expires_at <= devices.expiry_notice_horizon(now, settings),
        clone_suspected_at_iso=device.clone_suspected_at,
    )


def device_with_tokens_view(
    device: Device, *, now: datetime, settings: Settings
) -> DeviceWithTokensView:
    tokens = sorted(device.tokens, key=lambda t: t.issued_at, reverse=True)
    return DeviceWithTokensView(
        **dict(device_view(device, now=now, settings=settings)),
        tokens=[token_view(token) for token in tokens],
    )


def app_device_view(device: Device, *, this_device: str | None = None) -> AppDeviceView:
    """An admin's connected phone, as the Mobile app page and its API list it."""
    return AppDeviceView(
        device_id=device.id,
        device_name=device.label,
        platform=device.platform,
        device_identifier=device.device_identifier,
        last_active_at_iso=device.last_seen_at,
        connected_at_iso=device.registered_at,
        ip=device.last_ip,
        this_device=str(device.id) == this_device,
    )


def presence_change_view(change: PresenceChange) -> PresenceChangeView:
    return PresenceChangeView(online=change.online, at_iso=change.at)


def audit_view(event: AuditEvent) -> AuditEventView:
    return AuditEventView(
        id=event.id,
        at_iso=event.at,
        action=event.action,
        actor=AuditActor(type=event.actor_type, id=event.actor_id),
        target=AuditTarget(type=event.target_type, id=event.target_id),
        metadata=event.metadata,
    )


def _pending_device_view(pending: dict[str, object]) -> PendingDeviceView:
    return PendingDeviceView.model_validate(
        {
            key: pending.get(key)
            for key in ("label", "platform", "model", "osVersion", "appVersion", "ip", "checkCode")
        }
        | {"capabilities": pending.get("capabilities", [])}
    )


def pairing_attempt_view(attempt: PairingAttempt) -> PairingAttemptView:
    return PairingAttemptView(
        at_iso=attempt.at,
        outcome="burned" if attempt.outcome == "burned" else "refused",
        reason=attempt.reason,
        ip=attempt.ip,
        user_agent=attempt.user_agent,
    )


def pairing_session_view(
    session: PairingSession, *, now: datetime, attempts: Sequence[PairingAttempt] = ()
) -> PairingSessionView:
    pending = session.pending_device
    return PairingSessionView(
        pairing_session_id=session.id,
        state=effective_state(session, now),
        expires_at_iso=session.expires_at,
        failed_attempts=session.failed_attempts,
        pending_device=_pending_device_view(pending) if pending else None,
        device_id=session.device_id,
        attempts=[pairing_attempt_view(a) for a in attempts],
    )


def fleet_summary_view(counts: FleetSummary) -> FleetSummaryView:
    return FleetSummaryView(
        total=counts.total,
        online=counts.online,
        offline=counts.offline,
        pending_approval=counts.pending_approval,
        expiring_soon=counts.expiring_soon,
        clone_suspected=counts.clone_suspected,
        at_iso=counts.at,
    )


def credentials_view(issued: IssuedCredentials) -> CredentialsView:
    return CredentialsView(
        device_id=issued.device.id,
        device_token=issued.device_token,
        device_secret=issued.device_secret,
        expires_at_iso=issued.token.expires_at,
        capabilities=list(issued.device.capabilities),
    )


def webhook_view(endpoint: WebhookEndpoint) -> WebhookView:
    return WebhookView(
        webhook_id=endpoint.id,
        url=endpoint.url,
        events=endpoint.events,
        description=endpoint.description,
        created_at_iso=endpoint.created_at,
        disabled_at_iso=endpoint.disabled_at,
    )


def webhook_delivery_view(delivery: WebhookDelivery) -> WebhookDeliveryView:
    """`delivery.event` must be loaded (`webhooks.list_deliveries` does)."""
    return WebhookDeliveryView(
        delivery_id=delivery.id,
        event_id=webhooks.message_id(delivery.event_id),
        type=delivery.event.type,
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        next_attempt_at_iso=delivery.next_attempt_at,
        delivered_at_iso=delivery.delivered_at,
        failed_at_iso=delivery.failed_at,
        created_at_iso=delivery.created_at,
    )
