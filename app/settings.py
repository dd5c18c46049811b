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
        default=Environment.DEVELOPMENT, validation_alias="POLARIS_ENV"
    )
    database_url: str = "sqlite://./polaris.db"
    redis_url: str | None = None
    secret_key: SecretStr | None = None
    # Where development mode keeps the secrets it generates for itself.
    data_dir: Path = Field(default=Path(".polaris"), validation_alias="POLARIS_DATA_DIR")
    public_base_url: str = "http://127.0.0.1:8000"
    site_name: str = "Polaris"
    site_logo_url: str | None = None

    pairing_code_ttl_seconds: int = Field(default=60, gt=0)
    app_qr_ttl_seconds: int = Field(default=300, gt=0)
    # An admin-app refresh token lives this long after its last use (each refresh renews it).
    app_refresh_token_ttl_days: int = Field(default=30, gt=0)
    # Admin-app connections revoked, or unused, for this long are deleted by the cleanup job.
    app_device_retention_days: int = Field(default=90, gt=0)
    heartbeat_online_window_seconds: int = Field(default=90, gt=0)
    device_credential_ttl_days: int = Field(default=90, gt=0)
    supported_capabilities: Annotated[tuple[str, ...], NoDecode] = DEFAULT_CAPABILITIES

    heartbeat_interval_seconds: int = Field(default=30, gt=0)
    heartbeats_per_device: str = "12/minute"
    access_token_lifetime_seconds: int = Field(default=600, gt=0)
    session_idle_minutes: int = Field(default=30, gt=0)
    session_max_hours: int = Field(default=12, gt=0)
    login_failures_per_account: str = "5/15minutes"
    login_failures_per_ip: str = "30/15minutes"
    redeem_failures_per_ip: str = "20/10minutes"
    redeem_failures_global: str = "1000/minute"
    pairing_poll_interval_seconds: int = Field(default=5, gt=0)
    max_request_bytes: int = Field(default=16 * 1024, gt=0)
    # Number of reverse-proxy hops whose X-Forwarded-For entries are trusted.
    trusted_proxy_hops: int = Field(default=0, ge=0)

    # Background jobs (DESIGN §9): how often each runs, in seconds.
    expire_sessions_every_seconds: int = Field(default=5, gt=0)
    presence_sweep_every_seconds: int = Field(default=5, gt=0)
    last_seen_flush_every_seconds: int = Field(default=15, gt=0)
    cleanup_every_seconds: int = Field(default=3600, gt=0)
    # Embedded mode runs the jobs inside `polaris serve`; tests switch it off and call them.
    embedded_scheduler: bool = True
    # Ended console sessions are kept this long (for "who was signed in"), then deleted.
    session_retention_days: int = Field(default=30, gt=0)

    auto_migrate: bool | None = None
    log_level: str = "INFO"
    log_json: bool | None = None

    @field_validator("supported_capabilities", mode="before")
    @classmethod
    def _split_capabilities(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
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
