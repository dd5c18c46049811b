"""Success answers of the JSON APIs that are not a row's view: each route renders through one
of these (or a view of `app.edge.views`), and the OpenAPI document is generated from them."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from app.edge.views import (
    AppDeviceView,
    AuditEventView,
    DeviceView,
    DeviceWithTokensView,
    IsoTime,
    PresenceChangeView,
    UserView,
    View,
    WebhookDeliveryView,
    WebhookView,
    is_none,
)


class LivenessResponse(View):
    status: Literal["ok"]


class ReadinessChecks(View):
    database: bool
    redis: bool | SkipJsonSchema[None] = Field(
        None, exclude_if=is_none, description="Only when Redis is configured."
    )


class ReadinessResponse(View):
    """Ready when every configured backend answers."""

    status: Literal["ready", "unavailable"]
    checks: ReadinessChecks


class AccessTokenResponse(View):
    """A short-lived device access token (`typ` `device+jwt`, Ed25519)."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds.")
    expires_at_iso: IsoTime


class HeartbeatResponse(View):
    """Presence recorded; when to beat again, and when to renew the credentials."""

    next_heartbeat_in_seconds: int
    credentials_expire_at_iso: IsoTime = Field(
        description="When the credential pair behind the access token expires."
    )
    rotate_after_iso: IsoTime = Field(
        description="From this moment the device rotates its credentials "
        "(`POST /api/devices/credentials/rotate`) on its own."
    )


class PendingApprovalResponse(View):
    """A typed code: the device waits for the minting admin and polls with its verifier."""

    status: Literal["pending_approval"]
    pairing_id: UUID
    check_code: str = Field(description="6 digits; the device shows them to the admin.")
    interval: int = Field(description="Seconds to wait between polls.")
    expires_at_iso: IsoTime


class Jwk(View):
    """An Ed25519 public key (RFC 8037)."""

    crv: Literal["Ed25519"]
    x: str
    kid: str
    kty: Literal["OKP"]
    alg: Literal["Ed25519"]
    use: Literal["sig"]


class JwksResponse(View):
    """The keys that verify device and admin-app access tokens, the newest first."""

    keys: list[Jwk]


class LoginResponse(View):
    """The session cookie comes with it; echo `csrfToken` in `X-CSRF-Token` on writes."""

    user: UserView
    csrf_token: str


class UserResponse(View):
    user: UserView


class UserListResponse(View):
    items: list[UserView]


class MintedPairingSessionResponse(View):
    """A new scanner pairing code; `pairingUri` carries the console proof, returned once."""

    pairing_session_id: UUID
    code: str = Field(description="8 characters of Crockford base32.")
    pairing_uri: str = Field(description="`polaris://pair?code=…&proof=…&origin=…`.")
    expires_at_iso: IsoTime


class DeviceListResponse(View):
    items: list[DeviceView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class DeviceDetailResponse(DeviceWithTokensView):
    """A device with its credentials, recent audit events and presence changes."""

    audit: list[AuditEventView]
    presence_changes: list[PresenceChangeView]


class AuditLogResponse(View):
    items: list[AuditEventView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class AppQrPayload(View):
    """What the admin-app QR code holds."""

    token: str = Field(description="One-time, ≥ 256 bits, valid 5 minutes.")
    api_base_url: str
    logo_url: str | None
    site_name: str


class AppQrResponse(View):
    qr_svg: str = Field(description="The QR code as inline SVG.")
    payload: AppQrPayload
    expires_at_iso: IsoTime


class AppTokensResponse(View):
    """An admin-app access token (`typ` `admin+jwt`) and its rotating refresh token."""

    access_token: str
    refresh_token: str
    expires_in: int = Field(description="Seconds.")
    device_id: UUID


class AppDeviceListResponse(View):
    items: list[AppDeviceView]


class WebhookListResponse(View):
    items: list[WebhookView]


class WebhookDeliveryListResponse(View):
    """Newest first."""

    items: list[WebhookDeliveryView]


class OpenApiDocumentResponse(View):
    """This document."""

    openapi: Literal["3.1.0"]
    info: dict[str, Any]
    tags: list[dict[str, Any]]
    paths: dict[str, Any]
    components: dict[str, Any]
