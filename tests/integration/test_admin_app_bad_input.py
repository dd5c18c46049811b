"""Every bad input to the admin-app endpoints has its problem code (DESIGN §6, §7)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from app.models import Device
from simulator.admin import APP_EXCHANGE, APP_QR
from tests.admin_phone import APP_DEVICES, APP_REFRESH, DROP, app_body
from tests.wire import assert_problem

_TOKEN = "A" * 43  # well-formed, never issued

BAD_INPUTS: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    (
        "exchange-unknown-token",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN)},
        400,
        "invalid_code",
    ),
    (
        "exchange-short-token",
        "POST",
        APP_EXCHANGE,
        {"json": app_body("A" * 42)},
        400,
        "validation_error",
    ),
    (
        "exchange-token-bad-characters",
        "POST",
        APP_EXCHANGE,
        {"json": app_body("A" * 42 + "=")},
        400,
        "validation_error",
    ),
    (
        "exchange-token-not-a-string",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(12345)},  # type: ignore[arg-type]
        400,
        "validation_error",
    ),
    (
        "exchange-missing-token",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(DROP)},
        400,
        "validation_error",
    ),
    (
        "exchange-blank-device-name",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, deviceName="   ")},
        400,
        "validation_error",
    ),
    (
        "exchange-device-name-too-long",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, deviceName="x" * 121)},
        400,
        "validation_error",
    ),
    (
        "exchange-missing-device-name",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, deviceName=DROP)},
        400,
        "validation_error",
    ),
    (
        "exchange-platform-macos",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, platform="macos")},
        400,
        "validation_error",
    ),
    (
        "exchange-platform-upper-case",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, platform="IOS")},
        400,
        "validation_error",
    ),
    (
        "exchange-missing-platform",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, platform=DROP)},
        400,
        "validation_error",
    ),
    (
        "exchange-blank-device-identifier",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, deviceIdentifier="")},
        400,
        "validation_error",
    ),
    (
        "exchange-device-identifier-too-long",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, deviceIdentifier="a" * 129)},
        400,
        "validation_error",
    ),
    (
        "exchange-device-identifier-markup",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, deviceIdentifier="<script>")},
        400,
        "validation_error",
    ),
    (
        "exchange-missing-device-identifier",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, deviceIdentifier=DROP)},
        400,
        "validation_error",
    ),
    (
        "exchange-unknown-field",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, role="admin")},
        400,
        "validation_error",
    ),
    (
        "exchange-owner-mass-assignment",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, ownerUserId=str(uuid.uuid4()))},
        400,
        "validation_error",
    ),
    ("exchange-json-array", "POST", APP_EXCHANGE, {"json": [_TOKEN]}, 400, "validation_error"),
    (
        "exchange-not-json",
        "POST",
        APP_EXCHANGE,
        {"content": b"{token", "headers": {"content-type": "application/json"}},
        400,
        "validation_error",
    ),
    (
        "exchange-form-encoded",
        "POST",
        APP_EXCHANGE,
        {"data": {"token": _TOKEN}},
        415,
        "unsupported_media_type",
    ),
    (
        "exchange-too-large",
        "POST",
        APP_EXCHANGE,
        {"json": app_body(_TOKEN, deviceName="x" * 20_000)},
        413,
        "payload_too_large",
    ),
    (
        "refresh-unknown-token",
        "POST",
        APP_REFRESH,
        {"json": {"refreshToken": f"pxr_{'0' * 16}_{'A' * 43}"}},
        401,
        "invalid_credentials",
    ),
    (
        "refresh-malformed-token",
        "POST",
        APP_REFRESH,
        {"json": {"refreshToken": "not-a-refresh-token"}},
        401,
        "invalid_credentials",
    ),
    (
        "refresh-empty-token",
        "POST",
        APP_REFRESH,
        {"json": {"refreshToken": ""}},
        400,
        "validation_error",
    ),
    (
        "refresh-token-too-long",
        "POST",
        APP_REFRESH,
        {"json": {"refreshToken": "pxr_" + "a" * 300}},
        400,
        "validation_error",
    ),
    ("refresh-missing-token", "POST", APP_REFRESH, {"json": {}}, 400, "validation_error"),
    (
        "refresh-unknown-field",
        "POST",
        APP_REFRESH,
        {"json": {"refreshToken": "x", "deviceId": "y"}},
        400,
        "validation_error",
    ),
    (
        "refresh-text-plain",
        "POST",
        APP_REFRESH,
        {"content": b"x", "headers": {"content-type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
    ("devices-anonymous", "GET", APP_DEVICES, {}, 401, "not_authenticated"),
    (
        "devices-empty-bearer",
        "GET",
        APP_DEVICES,
        {"headers": {"Authorization": "Bearer "}},
        401,
        "invalid_credentials",
    ),
    (
        "devices-garbage-bearer",
        "GET",
        APP_DEVICES,
        {"headers": {"Authorization": "Bearer abc.def.ghi"}},
        401,
        "invalid_credentials",
    ),
    (
        "revoke-anonymous",
        "DELETE",
        f"{APP_DEVICES}/{uuid.uuid4()}",
        {},
        401,
        "not_authenticated",
    ),
    ("revoke-not-a-uuid", "DELETE", f"{APP_DEVICES}/not-a-uuid", {}, 404, "not_found"),
    ("generate-anonymous", "POST", APP_QR, {}, 401, "not_authenticated"),
    ("generate-wrong-method", "GET", APP_QR, {}, 405, "method_not_allowed"),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [pytest.param(m, p, k, s, c, id=name) for name, m, p, k, s, c in BAD_INPUTS],
)
async def test_bad_input_gets_problem_json_with_its_code(
    device_client: httpx.AsyncClient,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = await device_client.request(method, path, **kwargs)

    assert_problem(response, status, code)
    assert await Device.all().count() == 0
