from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import ConfigurationError, Environment, Settings


def test_production_without_secret_key_is_a_startup_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SECRET_KEY is required"):
        Settings(environment=Environment.PRODUCTION, data_dir=tmp_path)


def test_development_generates_a_secret_once_and_keeps_it(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path / "d").secret
    second = Settings(data_dir=tmp_path / "d").secret
    assert first == second
    assert len(first) >= 48
    assert (tmp_path / "d" / "secret_key").stat().st_mode & 0o777 == 0o600


def test_environment_is_read_with_documented_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POLARIS_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "k" * 48)
    monkeypatch.setenv("SUPPORTED_CAPABILITIES", "scan, push")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://polaris.example.com/")
    monkeypatch.setenv("HEARTBEAT_ONLINE_WINDOW_SECONDS", "45")
    settings = Settings(data_dir=tmp_path)
    assert settings.is_production
    assert settings.supported_capabilities == ("scan", "push")
    assert settings.public_base_url == "https://polaris.example.com"
    assert settings.heartbeat_online_window_seconds == 45
    assert settings.cookie_secure
    assert "k" * 48 not in repr(settings)  # the secret is masked


def test_defaults_are_the_embedded_mode() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite://./polaris.db"
    assert settings.is_embedded
    assert settings.should_auto_migrate
    assert settings.pairing_code_ttl_seconds == 60
    assert settings.app_qr_ttl_seconds == 300
    assert settings.supported_capabilities == ("managed", "scan", "push")
    assert not settings.cookie_secure
