"""Every operation of the JSON APIs, declared once. The OpenAPI document (`app.api.openapi`)
is built from this table; tests hold it to the router and to the answers the routes give.

An operation lists only the refusals its service decides; what follows from its shape (who
may call it, a JSON body, a query string, path parameters, CSRF) is added by `Operation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel

from app.api import responses as r
from app.api.schemas import (
    AppExchangeRequest,
    AppRefreshRequest,
    ApproveRequest,
    AuditQuery,
    CreateUserRequest,
    CreateWebhookRequest,
    CredentialsRequest,
    DeviceListQuery,
    HeartbeatRequest,
    LoginRequest,
    PollRequest,
    PushTokenRequest,
    RegisterRequest,
)
from app.edge.views import (
    CreatedWebhookView,
    CredentialsView,
    FleetSummaryView,
    PairingSessionView,
    TokenView,
    View,
    WebhookDeliveryView,
)
from app.services import refusals

Requirement = dict[str, list[str]]
_CREDENTIAL_CODES = frozenset({"invalid_credentials", "token_expired", "token_revoked"})
_SESSION_OR_APP: tuple[Requirement, ...] = ({"consoleSession": []}, {"adminAppBearer": []})


@dataclass(frozen=True)
class Access:
    """Who may call an operation: its OpenAPI security requirements (any one of them, by
    the names of `app.api.openapi.SECURITY_SCHEMES`), the refusals that follow from them,
    and the role it takes, in words."""

    requirements: tuple[Requirement, ...] = ()
    codes: frozenset[str] = frozenset()
    role: str = ""

    @property
    def by_console_session(self) -> bool:
        return any("consoleSession" in requirement for requirement in self.requirements)


PUBLIC = Access()
DEVICE = Access(({"deviceBearer": []},), _CREDENTIAL_CODES)
READER = Access(_SESSION_OR_APP, _CREDENTIAL_CODES | {"not_authenticated"}, "Any signed-in role.")
ADMIN = Access(
    _SESSION_OR_APP,
    _CREDENTIAL_CODES | {"not_authenticated", "forbidden"},
    "The admin role; operators get `forbidden`.",
)
CONSOLE_ADMIN = Access(
    ({"consoleSession": []},),
    _CREDENTIAL_CODES | {"not_authenticated", "forbidden"},
    "The admin role, signed in at the console (not with the admin app).",
)
METRICS = Access(
    ({"metricsBearer": []},),
    frozenset({"not_authenticated", "not_found"}),
    "The scraper, with `METRICS_TOKEN`; without one configured, development mode only "
    "(`not_found` otherwise, and whenever `METRICS_ENABLED=false`).",
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Text:
    """A success answer that is not JSON."""

    media_type: str


def refused_by(table: refusals.RefusalTable) -> frozenset[str]:
    """The codes a protocol's refusal table answers with."""
    return frozenset(error.code for error, _ in table.values())


@dataclass(frozen=True)
class Operation:
    method: str
    # As the router matches it, convertors included: `/devices/{device_id:uuid}`.
    path: str
    operation_id: str
    tag: str
    summary: str
    # Success status → the model of its body (None: no body).
    responses: Mapping[int, type[View] | Text | None]
    access: Access = PUBLIC
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    # The refusals the service decides, by stable problem code.
    refusals: frozenset[str] = frozenset()
    # Reads or writes the database or Redis, so a backend outage answers `unavailable`.
    backends: bool = True
    # Honours `Idempotency-Key` (`app.api.idempotency`).
    idempotent: bool = False
    description: str = ""

    @property
    def checks_csrf(self) -> bool:
        """A write a console session can make: the session cookie needs the CSRF header.
        Public operations are CSRF-exempt (no session acts there)."""
        return self.method not in SAFE_METHODS and self.access.by_console_session

    @property
    def has_path_parameters(self) -> bool:
        return "{" in self.path

    def problem_codes(self) -> frozenset[str]:
        """Every code this operation can answer with, whoever calls it however."""
        codes = {"internal_error", "payload_too_large", *self.refusals}
        codes |= self.access.codes
        if self.backends:
            codes.add("unavailable")
        if self.body is not None:
            codes |= {"validation_error", "unsupported_media_type"}
        if self.query is not None:
            codes.add("validation_error")
        if self.has_path_parameters:
            # Also a path parameter the router does not match (not a UUID).
            codes.add("not_found")
        if self.checks_csrf:
            codes.add("forbidden")
        if self.idempotent:
            codes |= {"validation_error", "idempotency_key_in_flight", "idempotency_key_reuse"}
        return frozenset(codes)


# A presented credential pair or refresh token: unknown, just rotated, expired, revoked.
_CREDENTIAL_REFUSALS = frozenset(
    {"invalid_credentials", "conflict", "token_expired", "token_revoked"}
)
_SESSION = "/api/v1/admin/pairing-sessions/{session_id:uuid}"
_DEVICE = "/api/v1/admin/devices/{device_id:uuid}"
_WEBHOOK = "/api/v1/admin/webhooks/{webhook_id:uuid}"

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/healthz",
        "liveness",
        "Service",
        "Liveness: the process serves requests",
        {200: r.LivenessResponse},
        backends=False,
    ),
    Operation(
        "GET",
        "/readyz",
        "readiness",
        "Service",
        "Readiness: the database (and Redis, when configured) answer",
        {200: r.ReadinessResponse, 503: r.ReadinessResponse},
        backends=False,
    ),
    Operation(
        "GET",
        "/metrics",
        "metrics",
        "Service",
        "Prometheus metrics, summed over the server's worker processes",
        {200: Text("text/plain")},
        access=METRICS,
    ),
    Operation(
        "GET",
        "/api/openapi.json",
        "openapiDocument",
        "Service",
        "This OpenAPI document",
        {200: r.OpenApiDocumentResponse},
        backends=False,
    ),
    Operation(
        "POST",
        "/api/devices/register",
        "registerDevice",
        "Device pairing",
        "Redeem a one-time code",
        {201: CredentialsView, 202: r.PendingApprovalResponse},
        body=RegisterRequest,
        refusals=refused_by(refusals.REDEEM)
        | {"invalid_code", "invalid_proof", "session_burned", "code_already_used"}
        | {"rate_limited"},
        description=(
            "Scanned (with `pairingProof`, the console proof of the QR code): `201` with the "
            "credentials at once. Typed (no proof): `202`, then poll "
            "`POST /api/devices/register/poll` until the minting admin approves. "
            "`capabilities` must come from the configured set."
        ),
        idempotent=True,
    ),
    Operation(
        "POST",
        "/api/devices/register/poll",
        "pollRegistration",
        "Device pairing",
        "Collect the credentials of an approved typed code",
        {201: CredentialsView},
        body=PollRequest,
        refusals=refused_by(refusals.POLL)
        | {"invalid_code", "invalid_proof", "session_burned", "code_already_used"}
        | {"authorization_pending", "slow_down", "expired_token"},
        description=(
            "RFC 8628's vocabulary: `authorization_pending` until the admin decides, "
            "`slow_down` when polled faster than `interval`. The credentials are returned once."
        ),
        idempotent=True,
    ),
    Operation(
        "POST",
        "/api/devices/token",
        "issueAccessToken",
        "Device runtime",
        "Trade the credentials for a short-lived access token",
        {200: r.AccessTokenResponse},
        body=CredentialsRequest,
        refusals=_CREDENTIAL_REFUSALS,
    ),
    Operation(
        "POST",
        "/api/devices/heartbeat",
        "heartbeat",
        "Device runtime",
        "Report presence",
        {200: r.HeartbeatResponse},
        access=DEVICE,
        body=HeartbeatRequest,
        body_required=False,
        refusals=frozenset({"rate_limited"}),
        description=(
            "The body may be empty. A token this server process has verified before is "
            "answered ahead of the middleware stack (the heartbeat fast path), with the same "
            "answers as the route."
        ),
    ),
    Operation(
        "PUT",
        "/api/devices/push-token",
        "updatePushToken",
        "Device runtime",
        "Upload the APNs push token",
        {204: None},
        access=DEVICE,
        body=PushTokenRequest,
    ),
    Operation(
        "POST",
        "/api/devices/credentials/rotate",
        "rotateCredentials",
        "Device runtime",
        "Trade the credentials for a new pair",
        {200: CredentialsView},
        body=CredentialsRequest,
        refusals=_CREDENTIAL_REFUSALS,
        description=(
            "The old pair is `rotated`. Presenting a rotated-out secret again revokes every "
            "credential of the device."
        ),
        idempotent=True,
    ),
    Operation(
        "GET",
        "/.well-known/jwks.json",
        "jwks",
        "Device runtime",
        "Public keys that verify access tokens",
        {200: r.JwksResponse},
        backends=False,
    ),
    Operation(
        "POST",
        "/api/v1/auth/login",
        "login",
        "Console session",
        "Sign in: a console session cookie and a CSRF token",
        {200: r.LoginResponse},
        body=LoginRequest,
        refusals=frozenset({"invalid_credentials", "rate_limited", "forbidden"}),
        description="Refused (`forbidden`) when the browser says the request is cross-site.",
    ),
    Operation(
        "POST",
        "/api/v1/auth/logout",
        "logout",
        "Console session",
        "Sign out: end the session and its unredeemed admin-app QR codes",
        {204: None},
        access=READER,
    ),
    Operation(
        "GET",
        "/api/v1/auth/me",
        "currentUser",
        "Console session",
        "Who is signed in",
        {200: r.UserResponse},
        access=READER,
    ),
    Operation(
        "GET",
        "/api/v1/admin/users",
        "listUsers",
        "Users",
        "List console users",
        {200: r.UserListResponse},
        access=ADMIN,
    ),
    Operation(
        "POST",
        "/api/v1/admin/users",
        "createUser",
        "Users",
        "Create a console user",
        {201: r.UserResponse},
        access=ADMIN,
        body=CreateUserRequest,
        refusals=frozenset({"conflict"}),
    ),
    Operation(
        "POST",
        "/api/v1/admin/pairing-sessions",
        "mintPairingCode",
        "Pairing sessions",
        "Mint a scanner pairing code",
        {201: r.MintedPairingSessionResponse},
        access=ADMIN,
    ),
    Operation(
        "GET",
        _SESSION,
        "getPairingSession",
        "Pairing sessions",
        "Read a pairing session, its pending device and its refused attempts",
        {200: PairingSessionView},
        access=READER,
    ),
    Operation(
        "DELETE",
        _SESSION,
        "cancelPairingSession",
        "Pairing sessions",
        "Cancel a pairing code",
        {204: None},
        access=ADMIN,
        refusals=refused_by(refusals.DECIDE),
        description="Only the admin who minted the code may cancel it.",
    ),
    Operation(
        "POST",
        _SESSION + "/approve",
        "approvePairingSession",
        "Pairing sessions",
        "Approve the device waiting on a typed code",
        {200: PairingSessionView},
        access=ADMIN,
        body=ApproveRequest,
        refusals=refused_by(refusals.DECIDE),
        description=(
            "Only the admin who minted the code may approve it, optionally granting a "
            "subset of the requested capabilities."
        ),
    ),
    Operation(
        "POST",
        _SESSION + "/reject",
        "rejectPairingSession",
        "Pairing sessions",
        "Reject the device waiting on a typed code",
        {200: PairingSessionView},
        access=ADMIN,
        refusals=refused_by(refusals.DECIDE),
        description="Only the admin who minted the code may reject it.",
    ),
    Operation(
        "GET",
        "/api/v1/admin/devices",
        "listDevices",
        "Fleet",
        "List the fleet, a page at a time",
        {200: r.DeviceListResponse},
        access=READER,
        query=DeviceListQuery,
    ),
    Operation(
        "GET",
        "/api/v1/admin/fleet/summary",
        "getFleetSummary",
        "Fleet",
        "Count the fleet: online, offline, pending approval, expiring soon, suspected clones",
        {200: FleetSummaryView},
        access=READER,
        description="Scanners only (admin-app connections are listed under Admin mobile app), "
        "deregistered devices left out. Each count is what the matching filter of "
        "`GET /api/v1/admin/devices` lists (`kind=scanner` with `online`, `expiringSoon` or "
        "`cloneSuspected`); `pendingApproval` counts typed codes not yet approved.",
    ),
    Operation(
        "GET",
        _DEVICE,
        "getDevice",
        "Fleet",
        "Inspect a device",
        {200: r.DeviceDetailResponse},
        access=READER,
    ),
    Operation(
        "DELETE",
        _DEVICE,
        "deregisterDevice",
        "Fleet",
        "Deregister a device (soft delete, every credential revoked)",
        {204: None},
        access=ADMIN,
        refusals=frozenset({"conflict"}),
        idempotent=True,
    ),
    Operation(
        "POST",
        _DEVICE + "/tokens/{token_id:uuid}/revoke",
        "revokeDeviceToken",
        "Fleet",
        "Revoke one credential of a device",
        {200: TokenView},
        access=ADMIN,
        refusals=frozenset({"conflict"}),
    ),
    Operation(
        "GET",
        "/api/v1/admin/audit",
        "listAuditEvents",
        "Audit log",
        "Read the audit log, newest first",
        {200: r.AuditLogResponse},
        access=READER,
        query=AuditQuery,
    ),
    Operation(
        "POST",
        "/api/v1/admin/app/generate-qr",
        "generateAppQr",
        "Admin mobile app",
        "Generate the admin-app QR code",
        {201: r.AppQrResponse},
        access=CONSOLE_ADMIN,
        description="From a signed-in console only; the QR code dies with that session.",
    ),
    Operation(
        "POST",
        "/api/v1/admin/app/exchange-token",
        "exchangeAppToken",
        "Admin mobile app",
        "Trade the QR code's token for access and refresh tokens",
        {200: r.AppTokensResponse},
        body=AppExchangeRequest,
        refusals=refused_by(refusals.APP_EXCHANGE)
        | {"invalid_code", "code_expired"}
        | {"rate_limited"},
        description="Single use: a second exchange of one token is `code_already_used`.",
    ),
    Operation(
        "POST",
        "/api/v1/admin/app/refresh",
        "refreshAppToken",
        "Admin mobile app",
        "Trade the refresh token for new tokens",
        {200: r.AppTokensResponse},
        body=AppRefreshRequest,
        refusals=_CREDENTIAL_REFUSALS,
        description="The refresh token rotates; replaying an old one revokes the app.",
    ),
    Operation(
        "GET",
        "/api/v1/admin/app/devices",
        "listAppDevices",
        "Admin mobile app",
        "List the caller's connected phones",
        {200: r.AppDeviceListResponse},
        access=READER,
    ),
    Operation(
        "DELETE",
        "/api/v1/admin/app/devices/{device_id:uuid}",
        "revokeAppDevice",
        "Admin mobile app",
        "Revoke a connected phone's access, at once",
        {204: None},
        access=ADMIN,
        refusals=frozenset({"conflict"}),
    ),
    Operation(
        "POST",
        "/api/v1/admin/webhooks",
        "createWebhook",
        "Webhooks",
        "Add a webhook endpoint; its signing secret is shown once",
        {201: CreatedWebhookView},
        access=ADMIN,
        body=CreateWebhookRequest,
        description="The URL must be http(s) (https in production) and must not resolve to a "
        "link-local or cloud metadata address, nor to a loopback or private one unless "
        "`WEBHOOK_ALLOW_PRIVATE_NETWORKS`; an unknown event type is `validation_error`.",
    ),
    Operation(
        "GET",
        "/api/v1/admin/webhooks",
        "listWebhooks",
        "Webhooks",
        "List the webhook endpoints (without their secrets)",
        {200: r.WebhookListResponse},
        access=READER,
    ),
    Operation(
        "DELETE",
        _WEBHOOK,
        "deleteWebhook",
        "Webhooks",
        "Delete a webhook endpoint and its deliveries",
        {204: None},
        access=ADMIN,
    ),
    Operation(
        "POST",
        _WEBHOOK + "/test",
        "sendWebhookTest",
        "Webhooks",
        "Send a `webhook.test` event to this endpoint alone",
        {202: WebhookDeliveryView},
        access=ADMIN,
        refusals=frozenset({"conflict"}),
        description="`conflict` when the endpoint is disabled. The delivery is attempted by "
        "the next run of the delivery job.",
    ),
    Operation(
        "GET",
        _WEBHOOK + "/deliveries",
        "listWebhookDeliveries",
        "Webhooks",
        "The endpoint's latest deliveries, newest first",
        {200: r.WebhookDeliveryListResponse},
        access=READER,
    ),
)
