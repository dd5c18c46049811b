"""What the admin app finds in the QR code: built from settings alone, no I/O."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.edge.qr import app_qr_payload, qr_text
from app.settings import Settings

TOKEN = "k" * 43


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings.model_validate({"data_dir": tmp_path, "secret_key": "s" * 48, **overrides})


@pytest.mark.parametrize(
    ("base_url", "logo", "expected_logo"),
    [
        ("https://polaris.example.com", None, None),
        (
            "https://polaris.example.com/",
            "/static/logo.png",
            "https://polaris.example.com/static/logo.png",
        ),
        (
            "https://example.com/polaris",
            "brand/logo.svg",
            "https://example.com/polaris/brand/logo.svg",
        ),
        (
            "https://polaris.example.com",
            "https://cdn.example.net/l.png",
            "https://cdn.example.net/l.png",
        ),
    ],
)
def test_payload_carries_absolute_urls(
    tmp_path: Path, base_url: str, logo: str | None, expected_logo: str | None
) -> None:
    settings = _settings(tmp_path, public_base_url=base_url, site_logo_url=logo)

    payload = app_qr_payload(token=TOKEN, settings=settings)

    assert payload == {
        "token": TOKEN,
        "apiBaseUrl": base_url.rstrip("/") + "/api/v1",
        "logoUrl": expected_logo,
        "siteName": "Polaris",
    }


def test_qr_text_is_compact_ascii_json(tmp_path: Path) -> None:
    payload = app_qr_payload(token=TOKEN, settings=_settings(tmp_path, site_name="Zürich Depot"))

    text = qr_text(payload)

    assert text.isascii()
    assert text == json.dumps(payload, separators=(",", ":"))
    assert json.loads(text) == payload
    assert json.loads(text)["siteName"] == "Zürich Depot"
