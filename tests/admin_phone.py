"""What the admin mobile app and the console's Mobile app page send (DESIGN §6), for tests
that read the raw answer.

`AdminApi.connect_admin_app` plays the phone over its own network client; in-process tests
play it over the ASGI transport they already have, so the phone keeps its own address.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.admin import APP_EXCHANGE, APP_QR, AdminAppTokens
from tests.backends import IN_CI
from tests.factories import SignedInClient

APP_REFRESH = "/api/v1/admin/app/refresh"
APP_DEVICES = "/api/v1/admin/app/devices"
PHONE_IP = "198.51.100.23"  # the device_client fixture's address
IDENTIFIER = "6F1C2A9E-4B7D-4E0A-9C61-2D3B5A7F8E10"
# Leaves a field out of an exchange body.
DROP: Any = object()


def app_body(token: str, **overrides: Any) -> dict[str, Any]:
    """`POST /api/v1/admin/app/exchange-token` as the app sends it after scanning."""
    body = {
        "token": token,
        "deviceName": "Ada's iPhone",
        "platform": "ios",
        "deviceIdentifier": IDENTIFIER,
        **overrides,
    }
    return {k: v for k, v in body.items() if v is not DROP}


async def generate(admin: SignedInClient) -> dict[str, Any]:
    """Generate QR Code: `{qrSvg, payload, expiresAtIso}`."""
    response = await admin.client.post(APP_QR, headers=admin.write_headers())
    assert response.status_code == 201, response.text
    generated: dict[str, Any] = response.json()
    return generated


async def exchange(phone: httpx.AsyncClient, token: str, **overrides: Any) -> httpx.Response:
    return await phone.post(APP_EXCHANGE, json=app_body(token, **overrides))


def tokens(exchanged: httpx.Response) -> AdminAppTokens:
    assert exchanged.status_code == 200, exchanged.text
    body = exchanged.json()
    return AdminAppTokens(
        device_id=str(body["deviceId"]),
        access_token=str(body["accessToken"]),
        refresh_token=str(body["refreshToken"]),
        expires_in=int(body["expiresIn"]),
    )


async def connect(
    admin: SignedInClient, phone: httpx.AsyncClient, **overrides: Any
) -> AdminAppTokens:
    """The console shows a QR code and the phone redeems it."""
    qr = await generate(admin)
    return tokens(await exchange(phone, qr["payload"]["token"], **overrides))


async def refresh(phone: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await phone.post(APP_REFRESH, json={"refreshToken": refresh_token})


async def cancel_from_console(admin: SignedInClient) -> str:
    """Show a QR code on the Mobile app page, then press its Cancel button."""
    headers = {**admin.write_headers(), "HX-Request": "true"}
    card = (await admin.client.post("/admin/mobile-app/qr", headers=headers)).text
    cancel_url = re.search(r'hx-post="(/admin/mobile-app/qr/[0-9a-f-]+/cancel)"', card)
    assert cancel_url is not None
    response = await admin.client.post(cancel_url.group(1), headers=headers)
    assert response.status_code == 200
    return cancel_url.group(1).split("/")[-2]


def decode_qr(svg: str, workdir: Path) -> str:
    """Render the SVG exactly as served, then read it with zbar, as a phone camera would."""
    missing = [tool for tool in ("rsvg-convert", "zbarimg") if shutil.which(tool) is None]
    if missing:
        if IN_CI:
            pytest.fail(f"CI=true but {', '.join(missing)} missing (scripts/bootstrap)")
        pytest.skip(f"{', '.join(missing)} not installed (librsvg2-bin, zbar-tools)")
    (workdir / "qr.svg").write_text(svg)
    subprocess.run(
        ["rsvg-convert", "--zoom", "4", "--background-color", "white", "-o", "qr.png", "qr.svg"],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    decoded = subprocess.run(
        ["zbarimg", "--raw", "-q", "qr.png"], cwd=workdir, capture_output=True, check=True
    )
    return decoded.stdout.decode().rstrip("\n")


def payload_on_screen(html: str, workdir: Path) -> dict[str, Any]:
    """The JSON payload of the first QR code on a console page, read as the phone reads it."""
    svg = html[html.index("<svg") : html.index("</svg>") + len("</svg>")]
    payload: dict[str, Any] = json.loads(decode_qr(svg, workdir))
    return payload
