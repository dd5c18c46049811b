"""How rows look on the wire, as pydantic models: the API renders through them and the
OpenAPI document is generated from them, so the two cannot drift. camelCase on the wire,
times in ISO 8601 UTC with a `Z`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

from app.models import Kind, Role
from statemachines import DeviceState, PairingState, TokenState


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


IsoTime = Annotated[
    datetime,
    PlainSerializer(iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
ScannerPlatform = Literal["ios", "macos", "ipados"]
AppPlatform = Literal["ios", "android"]
ApnsEnvironment = Literal["sandbox", "production"]


def is_none(value: object) -> bool:
    """For `Field(exclude_if=...)`: a field left out of the answer, rather than sent as null,
    when it has no value. Typed `X | SkipJsonSchema[None]`, the schema says "optional", not
    "nullable"."""
    return value is None


class View(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )

    def wire(self) -> dict[str, Any]:
        """The answer as JSON-ready data with its wire (camelCase) names."""
        return self.model_dump(mode="json", by_alias=True)


class UserView(View):
    """A console user."""

    user_id: UUID
    email: str
    role: Role


class TokenView(View):
    """One long-lived credential pair of a device; the secrets themselves are never shown."""

    token_id: UUID
    state: TokenState
    issued_at_iso: IsoTime
    expires_at_iso: IsoTime


class DeviceView(View):
    """A device of the fleet: a scanner, or an admin's connected phone."""

    device_id: UUID
    kind: Kind
    label: str
    platform: Literal[ScannerPlatform, AppPlatform]
    model: str
    os_version: str
    app_version: str
    apns_environment: ApnsEnvironment | None
    push_token_last8: str | None
    capabilities: list[str]
    owner_user_id: UUID
    owner_email: str
    state: DeviceState
    online: bool = Field(description="A heartbeat within the online window.")
    last_seen_at_iso: IsoTime | None
    registered_at_iso: IsoTime
    deregistered_at_iso: IsoTime | None
    credential_expires_at_iso: IsoTime | None = Field(
        description="When the active credential expires; null with none active."
    )
    credential_expires_soon: bool = Field(
        description="The active credential expires within `CREDENTIAL_EXPIRY_NOTICE_DAYS`."
    )
    clone_suspected_at_iso: IsoTime | None = Field(
        description="When one credential pair was first used from two app installs."
    )


class DeviceWithTokensView(DeviceView):
    """A device and its credentials, newest first."""

    tokens: list[TokenView]


class FleetSummaryView(View):
    """The fleet's counts: scanners only, deregistered ones left out."""

    total: int
    online: int
    offline: int
    pending_approval: int = Field(
        description="Typed codes waiting for the minting admin's approval (not devices yet)."
    )
    expiring_soon: int = Field(
        description="Devices whose active credential expires within "
        "`CREDENTIAL_EXPIRY_NOTICE_DAYS`."
    )
    clone_suspected: int = Field(description="Devices flagged as suspected clones.")
    at_iso: IsoTime


class AppDeviceView(View):
    """An admin's phone connected through the admin mobile app."""

    device_id: UUID
    device_name: str
    platform: AppPlatform
    device_identifier: str | None
    last_active_at_iso: IsoTime | None
    connected_at_iso: IsoTime
    ip: str | None
    this_device: bool = Field(description="Whether this is the phone making the request.")


class PresenceChangeView(View):
    """An online ⇄ offline transition recorded by the presence sweep."""

    online: bool
    at_iso: IsoTime


class AuditActor(View):
    type: Literal["user", "device", "system"]
    id: str | None


class AuditTarget(View):
    type: str | None
    id: str | None


class AuditEventView(View):
    """One entry of the audit log."""

    id: UUID
    at_iso: IsoTime
    action: str = Field(description="Dotted past tense, e.g. `device.registered`.")
    actor: AuditActor
    target: AuditTarget
    metadata: dict[str, Any]


class PendingDeviceView(View):
    """The device waiting for an admin's approval of a typed code."""

    label: str
    platform: ScannerPlatform
    model: str
    os_version: str
    app_version: str
    ip: str | None
    check_code: str = Field(description="6 digits the device shows; compare before approving.")
    capabilities: list[str]


class PairingAttemptView(View):
    """A refused redemption or poll of the code; what was sent is never kept."""

    at_iso: IsoTime
    outcome: Literal["refused", "burned"] = Field(
        description="`burned` for the wrong proof that closed the code."
    )
    reason: str = Field(description="The problem code it was refused with.")
    ip: str | None
    user_agent: str | None = Field(description="As sent, cut to 256 characters.")


class PairingSessionView(View):
    """A scanner pairing code's session as the clock sees it."""

    pairing_session_id: UUID
    state: PairingState
    expires_at_iso: IsoTime
    failed_attempts: int
    pending_device: PendingDeviceView | SkipJsonSchema[None] = Field(None, exclude_if=is_none)
    device_id: UUID | SkipJsonSchema[None] = Field(None, exclude_if=is_none)
    attempts: list[PairingAttemptView] = Field(
        description="Refused redemptions and polls of this code, newest first (the last 20)."
    )


class CredentialsView(View):
    """A device's long-lived credentials, shown exactly once."""

    device_id: UUID
    device_token: str = Field(description="`pxd_<lookup id>_<random>`.")
    device_secret: str = Field(description="`pxs_…`; store it in the device's keychain.")
    expires_at_iso: IsoTime
    capabilities: list[str]


class WebhookView(View):
    """A webhook endpoint; its signing secret is shown only when it is created."""

    webhook_id: UUID
    url: str
    events: list[str] = Field(description='Event types, or `["*"]` for all of them.')
    description: str
    created_at_iso: IsoTime
    disabled_at_iso: IsoTime | None = Field(
        description="When a delivery failed through the whole retry schedule; nothing more is sent."
    )


class CreatedWebhookView(View):
    """A new webhook endpoint with its signing secret, shown exactly once."""

    webhook_id: UUID
    url: str
    events: list[str]
    description: str
    secret: str = Field(
        description="`whsec_` + base64: the Standard Webhooks key that verifies signatures."
    )
    created_at_iso: IsoTime


class WebhookDeliveryView(View):
    """One event's delivery to one endpoint, attempted until delivered or failed."""

    delivery_id: UUID
    event_id: str = Field(description="`msg_…`, the `webhook-id` header of every attempt.")
    type: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at_iso: IsoTime | None
    delivered_at_iso: IsoTime | None
    failed_at_iso: IsoTime | None
    created_at_iso: IsoTime
