"""Admin mobile app API (DESIGN §6): QR code, token exchange, refresh, connected devices."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import clock
from app.api.actors import request_ip
from app.api.bodies import parse_body
from app.api.responses import json_response
from app.api.schemas import AppExchangeRequest, AppRefreshRequest
from app.api.views import iso
from app.auth.access import require_admin, require_console_admin, require_reader
from app.auth.jwt import ADMIN_AUDIENCE, ADMIN_TOKEN_TYPE
from app.models import Device
from app.services import app_credentials, app_onboarding
from app.services.app_credentials import AppTokens
from app.settings import Settings
from app.web.qr import qr_svg

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def app_device_view(device: Device, *, this_device: str | None = None) -> dict[str, Any]:
    return {
        "deviceId": str(device.id),
        "deviceName": device.label,
        "platform": device.platform,
        "deviceIdentifier": device.device_identifier,
        "lastActiveAtIso": iso(device.last_seen_at),
        "connectedAtIso": iso(device.registered_at),
        "ip": device.last_ip,
        "thisDevice": str(device.id) == this_device,
    }


def _tokens(request: Request, issued: AppTokens) -> Response:
    lifetime = app_credentials.ACCESS_TOKEN_LIFETIME_SECONDS
    access_token, _ = request.app.state.keyring.sign(
        token_type=ADMIN_TOKEN_TYPE,
        audience=ADMIN_AUDIENCE,
        subject=str(issued.device.id),
        token_id=str(issued.token.id),
        scope=(),
        issued_at=int(clock.now().timestamp()),
        lifetime=lifetime,
    )
    return json_response(
        {
            "accessToken": access_token,
            "refreshToken": issued.refresh_token,
            "expiresIn": lifetime,
            "deviceId": str(issued.device.id),
        },
        headers=NO_STORE,
    )


async def qr_answer(generated: app_onboarding.GeneratedQr) -> dict[str, Any]:
    return {
        "qrSvg": str(await qr_svg(generated.text, title="Admin app QR code")),
        "payload": generated.payload,
        "expiresAtIso": iso(generated.session.expires_at),
    }


async def generate_qr(request: Request) -> Response:
    principal = await require_console_admin(request)
    assert principal.session is not None
    generated = await app_onboarding.generate_qr(
        admin=principal.user,
        console_session=principal.session,
        ip=request_ip(request),
        settings=request.app.state.settings,
    )
    return json_response(await qr_answer(generated), status=201, headers=NO_STORE)


async def exchange_token(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    body = await parse_body(request, AppExchangeRequest)
    issued = await app_onboarding.exchange(
        token=body.token,
        details=app_onboarding.AppDetails(
            name=body.device_name, platform=body.platform, identifier=body.device_identifier
        ),
        ip=request_ip(request),
        limiter=request.app.state.rate_limiter,
        settings=settings,
        presence=request.app.state.presence,
    )
    return _tokens(request, issued)


async def refresh(request: Request) -> Response:
    body = await parse_body(request, AppRefreshRequest)
    issued = await app_credentials.refresh(
        refresh_token=body.refresh_token,
        ip=request_ip(request),
        settings=request.app.state.settings,
        presence=request.app.state.presence,
    )
    return _tokens(request, issued)


async def list_devices(request: Request) -> Response:
    principal = await require_reader(request)
    devices = await app_onboarding.list_devices(
        owner=principal.user, presence=request.app.state.presence
    )
    return json_response(
        {"items": [app_device_view(d, this_device=principal.app_device_id) for d in devices]},
        headers=NO_STORE,
    )


async def revoke_device(request: Request) -> Response:
    principal = await require_admin(request)
    await app_onboarding.revoke(
        device_id=request.path_params["device_id"],
        admin=principal.user,
        ip=request_ip(request),
        presence=request.app.state.presence,
    )
    return Response(status_code=204)


_BASE = "/api/v1/admin/app"
routes = [
    Route(_BASE + "/generate-qr", generate_qr, methods=["POST"]),
    Route(_BASE + "/exchange-token", exchange_token, methods=["POST"]),
    Route(_BASE + "/refresh", refresh, methods=["POST"]),
    Route(_BASE + "/devices", list_devices, methods=["GET"]),
    Route(_BASE + "/devices/{device_id:uuid}", revoke_device, methods=["DELETE"]),
]
