"""Request shapes of the JSON APIs (bodies and query strings): camelCase on the wire, unknown
fields refused. The answers are in `app.api.responses` and `app.edge.views`."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

from app.edge.text import NUL_REFUSED, has_nul
from app.models import Kind, Role
from app.services import pairing_codes


class ApiModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul_characters(cls, value: object) -> object:
        # PostgreSQL text cannot hold U+0000: refused here, it would fail in the database.
        if has_nul(value):
            raise ValueError(NUL_REFUSED)
        return value


class CreateUserRequest(ApiModel):
    email: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"
        ),
    ]
    password: Annotated[str, Field(min_length=12, max_length=1024)]
    role: Role


class LoginRequest(ApiModel):
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
Challenge = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-_]{43}$")]
Verifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-._~]{43,128}$")]
PushToken = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{1,200}$")]


class RegisterRequest(ApiModel):
    code: str = Field(description="The one-time code; case, spaces and hyphens are ignored.")
    code_challenge: Challenge = Field(description="The device's own PKCE S256 challenge.")
    label: Label
    platform: Literal["ios", "macos", "ipados"]
    model: ShortText
    os_version: ShortText
    app_version: ShortText
    apns_environment: Literal["sandbox", "production"]
    capabilities: Annotated[list[str], Field(min_length=1, max_length=16)] = Field(
        description="Each from the configured set (by default `managed`, `scan`, `push`)."
    )
    push_token: PushToken | None = None
    pairing_proof: Verifier | None = Field(
        None, description="The console proof from the QR code; typed codes have none."
    )

    @field_validator("code")
    @classmethod
    def _normalise_code(cls, value: str) -> str:
        try:
            return pairing_codes.normalise(value)
        except pairing_codes.MalformedCode as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: list[str], info: ValidationInfo) -> list[str]:
        supported = (info.context or {}).get("capabilities", ())
        unknown = sorted(set(value) - set(supported))
        if unknown:
            raise ValueError(
                f"unsupported: {', '.join(unknown)}; supported: {', '.join(supported)}"
            )
        return list(dict.fromkeys(value))


class PollRequest(ApiModel):
    pairing_id: UUID
    code_verifier: Verifier = Field(description="The verifier of the `codeChallenge` sent.")


class ApproveRequest(ApiModel):
    capabilities: Annotated[list[str], Field(min_length=1, max_length=16)] | None = Field(
        None, description="A subset of the requested capabilities; all of them when left out."
    )


class DeviceListQuery(ApiModel):
    kind: Kind | None = None
    platform: Literal["ios", "macos", "ipados", "android"] | None = None
    online: bool | None = None
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)] | None = Field(
        None, description="Part of the label or the model, any case."
    )
    include_deregistered: bool = False
    expiring_soon: bool = Field(
        False,
        description="Only devices whose active credential expires within "
        "`CREDENTIAL_EXPIRY_NOTICE_DAYS`.",
    )
    clone_suspected: bool = Field(False, description="Only devices flagged as suspected clones.")
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        None, description="`nextCursor` of the previous page."
    )
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class AuditQuery(ApiModel):
    action: Annotated[str, StringConstraints(max_length=64)] | None = None
    device_id: UUID | None = None
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50


CredentialText = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class CredentialsRequest(ApiModel):
    device_token: CredentialText
    device_secret: CredentialText
    installation_id: UUID | None = Field(
        None,
        description="A random UUID the app made at install and keeps beside the credentials: "
        "one pair used from two installs flags the device as a suspected clone. Optional, so "
        "that apps built before it existed keep working; their requests are not checked.",
    )


class HeartbeatRequest(ApiModel):
    app_version: ShortText | None = None
    os_version: ShortText | None = None
    # Strict: a number, as documented; lax parsing would take `false` or `"0.5"` too.
    battery_level: Annotated[float, Field(ge=0, le=1, strict=True)] | None = None


class PushTokenRequest(ApiModel):
    push_token: PushToken
    apns_environment: Literal["sandbox", "production"]


DeviceIdentifier = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9._:\-]{1,128}$")
]


class AppExchangeRequest(ApiModel):
    token: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{43}$")]
    device_name: Label
    platform: Literal["ios", "android"]
    device_identifier: DeviceIdentifier


class AppRefreshRequest(ApiModel):
    refresh_token: CredentialText


class CreateWebhookRequest(ApiModel):
    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
    events: Annotated[
        list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]],
        Field(min_length=1, max_length=32),
    ] = Field(description='Event types to receive, or `["*"]` for all of them.')
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
