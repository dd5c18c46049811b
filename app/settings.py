"""The only reader of the environment (DESIGN §10)."""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_CAPABILITIES = ("managed", "scan", "push")
# Seconds between delivery attempts, in the spirit of Standard Webhooks: about a day in all.
DEFAULT_WEBHOOK_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


class CloneResponse(StrEnum):
    FLAG = "flag"
    REVOKE = "revoke"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigurationError(RuntimeError):
    """Raised at start-up when the environment cannot run the service safely."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", frozen=True, populate_by_name=True
    )

    environment: Environment = Field(
        default=Environment.DEVELOPMENT,
        validation_alias="POLARIS_ENV",
        description="`production` requires `SECRET_KEY` and marks cookies `Secure`.",
    )
    database_url: str = Field(
        default="sqlite://./polaris.db",
        description="`sqlite://path` (embedded) or `postgres://user:password@host:5432/db`.",
    )
    redis_url: str | None = Field(
        default=None,
        description="`redis://host:6379/0`: shared presence, revocations, rate limits and arq. "
        "Unset: embedded, one process.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs CSRF tokens, keys code hashes, encrypts the JWT signing keys at "
        "rest. Development generates one into the data directory.",
    )
    data_dir: Path = Field(
        default=Path(".polaris"),
        validation_alias="POLARIS_DATA_DIR",
        description="Where development mode keeps the secret it generates for itself.",
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The console's public address and the access tokens' issuer "
        "(`https://` makes cookies `Secure`).",
    )
    site_name: str = Field(default="Polaris", description="Shown in the console and the app.")
    site_logo_url: str | None = Field(
        default=None, description="Logo in the admin-app QR payload, absolute or site-relative."
    )

    pairing_code_ttl_seconds: int = Field(
        default=60, gt=0, description="Life of a scanner pairing code."
    )
    app_qr_ttl_seconds: int = Field(default=300, gt=0, description="Life of an admin-app QR token.")
    app_refresh_token_ttl_days: int = Field(
        default=30, gt=0, description="An admin-app refresh token expires this long after its use."
    )
    app_device_retention_days: int = Field(
        default=90,
        gt=0,
        description="Admin-app connections revoked or unused this long are deleted by cleanup.",
    )
    heartbeat_online_window_seconds: int = Field(
        default=90, gt=0, description="A device is online if it heartbeated this recently."
    )
    device_credential_ttl_days: int = Field(
        default=90, gt=0, description="Life of device credentials."
    )
    supported_capabilities: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_CAPABILITIES,
        description="Capabilities a device may request, comma-separated.",
    )

    heartbeat_interval_seconds: int = Field(
        default=30, gt=0, description="The `nextHeartbeatInSeconds` devices are told."
    )
    heartbeats_per_device: str = Field(
        default="12/minute", description="Heartbeat budget of one device, per server process."
    )
    access_token_lifetime_seconds: int = Field(
        default=600, gt=0, description="Life of a device access JWT."
    )
    session_idle_minutes: int = Field(
        default=30, gt=0, description="A console session ends after this long unused."
    )
    session_max_hours: int = Field(
        default=12, gt=0, description="A console session ends this long after sign-in."
    )
    console_refresh_seconds: int = Field(
        default=5,
        gt=0,
        description="How often an open Devices or device page asks for changes (at most one "
        "update per interval, however many devices changed).",
    )
    login_failures_per_account: str = Field(
        default="5/15minutes", description="Failed sign-ins allowed per account."
    )
    login_failures_per_ip: str = Field(
        default="30/15minutes", description="Failed sign-ins allowed per client address."
    )
    redeem_failures_per_ip: str = Field(
        default="20/10minutes", description="Failed code redemptions allowed per client address."
    )
    redeem_failures_global: str = Field(
        default="200/minute",
        description="Code redemptions evaluated over all clients (a success spends one too). "
        "While it is spent, typed codes are refused and scanned codes still pair; "
        "`polaris brute-force-odds` prints what it allows.",
    )
    pairing_poll_interval_seconds: int = Field(
        default=5, gt=0, description="How often a device waiting for approval may poll."
    )
    idempotency_ttl_seconds: int = Field(
        default=300,
        gt=0,
        description="How long an `Idempotency-Key` answer is kept (encrypted) for a retry.",
    )
    rotation_race_window_seconds: int = Field(
        default=10,
        ge=0,
        description="A rotated-out credential presented this soon after its rotation answers "
        "409 (audited) instead of revoking the device as a stolen copy.",
    )
    verified_pairs_size: int = Field(
        default=100_000,
        ge=0,
        description="Credential pairs each process keeps verified for the token exchange "
        "(0 reads the database on every exchange); about 700 bytes each.",
    )
    verified_pairs_seconds: int = Field(
        default=600,
        ge=0,
        lt=900,
        description="How long a verified pair is kept; shorter than the 15 minutes a process "
        "remembers a revocation, which every hit asks.",
    )
    max_request_bytes: int = Field(
        default=16 * 1024, gt=0, description="Larger request bodies are refused (413)."
    )
    trusted_proxy_hops: int = Field(
        default=0,
        ge=0,
        description="Reverse proxies in front whose `X-Forwarded-For` entries are believed.",
    )

    credential_expiry_notice_days: int = Field(
        default=14,
        gt=0,
        description="`device.token.expiring` is sent for credentials expiring this soon.",
    )
    credential_rotate_after: float = Field(
        default=2 / 3,
        gt=0,
        lt=1,
        description="Share of the credentials' life after which heartbeats tell the device "
        "to rotate (`rotateAfterIso`).",
    )
    clone_response: CloneResponse = Field(
        default=CloneResponse.FLAG,
        description="When one credential pair is used from two app installs: `flag` the "
        "device, or `revoke` its credentials as well.",
    )
    webhook_retry_schedule: Annotated[tuple[int, ...], NoDecode] = Field(
        default=DEFAULT_WEBHOOK_RETRY_SCHEDULE,
        description="Seconds between webhook delivery attempts, comma-separated; an endpoint "
        "failing through all of them is disabled.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long one webhook delivery attempt may take."
    )
    webhook_retention_days: int = Field(
        default=30,
        gt=0,
        description="Webhook events whose deliveries are all settled are deleted by cleanup "
        "this long after they happened, with their delivery log.",
    )
    webhook_allow_private_networks: bool = Field(
        default=False,
        description="Allow webhook URLs on loopback and private addresses (link-local and "
        "cloud metadata addresses are refused always).",
    )

    # Background jobs (DESIGN §9): how often each runs, in seconds.
    expire_sessions_every_seconds: int = Field(
        default=5, gt=0, description="Job interval: expire pairing sessions past their TTL."
    )
    presence_sweep_every_seconds: int = Field(
        default=5, gt=0, description="Job interval: record online/offline transitions."
    )
    presence_reconcile_every_seconds: int = Field(
        default=60,
        gt=0,
        description="At least this often the presence sweep compares every device heard "
        "from with every device reported online, instead of only those whose heartbeats "
        "crossed the window's edge or arrived since the last sweep.",
    )
    last_seen_flush_every_seconds: int = Field(
        default=15, gt=0, description="Job interval: copy heartbeat times to the database."
    )
    webhook_delivery_every_seconds: int = Field(
        default=2, gt=0, description="Job interval: send the webhook deliveries that are due."
    )
    credential_expiry_every_seconds: int = Field(
        default=86400,
        gt=0,
        description="Job interval: send `device.token.expiring` for credentials near expiry.",
    )
    cleanup_every_seconds: int = Field(
        default=3600, gt=0, description="Job interval: delete what has outlived its retention."
    )
    # Tests switch it off and call the jobs themselves.
    embedded_scheduler: bool = Field(
        default=True, description="Embedded mode runs the jobs inside `polaris serve`."
    )
    session_retention_days: int = Field(
        default=30,
        gt=0,
        description="Ended console sessions are kept this long, then deleted (the audit log "
        "is kept).",
    )

    auto_migrate: bool | None = Field(
        default=None, description="Apply migrations when `serve` starts; on for SQLite."
    )
    metrics_enabled: bool = Field(
        default=True, description="Count requests, heartbeats, pairings and jobs for `/metrics`."
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="`/metrics` then requires `Authorization: Bearer <token>`; unset, it is "
        "served in development mode only.",
    )
    log_level: str = Field(default="INFO", description="`DEBUG`, `INFO`, `WARNING` or `ERROR`.")
    log_json: bool | None = Field(
        default=None, description="JSON log lines; unset: JSON unless stderr is a terminal."
    )

    @field_validator("supported_capabilities", mode="before")
    @classmethod
    def _split_capabilities(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in value.split(",") if part.strip())
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _positive_delays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(delay < 0 for delay in value):
            raise ValueError("a comma-separated list of seconds, each 0 or more")
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: object) -> object:
        # `METRICS_TOKEN=` in an env file means no token, never an empty one anyone can send.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("public_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _require_secret_in_production(self) -> Settings:
        if self.environment is Environment.PRODUCTION and self.secret_key is None:
            raise ConfigurationError(
                "SECRET_KEY is required when POLARIS_ENV=production; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return self

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def is_embedded(self) -> bool:
        """No Redis: in-memory presence and rate limits, in-process scheduler."""
        return self.redis_url is None

    @property
    def should_auto_migrate(self) -> bool:
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.database_url.startswith("sqlite")

    @property
    def cookie_secure(self) -> bool:
        return self.is_production or urlsplit(self.public_base_url).scheme == "https"

    @cached_property
    def secret(self) -> str:
        """The signing secret; development mode generates one and keeps it on disk."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(value)
        return value


def load_settings() -> Settings:
    """The settings the environment gives; raises `ConfigurationError` if they are unsafe."""
    return Settings()
