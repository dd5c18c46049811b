"""Admin mobile app API (DESIGN §6): QR code, token exchange, refresh, connected devices."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import clock
from app.api.bodies import parse_body
from app.api.responses import AppDeviceListResponse, AppQrPayload, AppQrResponse, AppTokensResponse
from app.api.schemas import AppExchangeRequest, AppRefreshRequest
from app.auth.jwt import ADMIN_AUDIENCE, ADMIN_TOKEN_TYPE
from app.edge.access import require_admin, require_console_admin, require_reader
from app.edge.presenters import app_device_view
from app.edge.qr import app_qr
from app.edge.responses import NO_STORE, view_response
from app.edge.runtime import request_ip, runtime
from app.services import app_credentials, app_onboarding
from app.services.app_credentials import AppTokens


def _tokens(request: Request, issued: AppTokens) -> Response:
    lifetime = app_credentials.ACCESS_TOKEN_LIFETIME_SECONDS
    access_token, _ = runtime(request).keyring.sign(
        token_type=ADMIN_TOKEN_TYPE,
        audience=ADMIN_AUDIENCE,
        subject=str(issued.device.id),
        token_id=str(issued.token.id),
        scope=(),
        issued_at=int(clock.now().timestamp()),
        lifetime=lifetime,
    )
    return view_response(
        AppTokensResponse(
            access_token=access_token,
            refresh_token=issued.refresh_token,
            expires_in=lifetime,
            device_id=issued.device.id,
        ),
        headers=NO_STORE,
    )


async def generate_qr(request: Request) -> Response:
    principal = await require_console_admin(request)
    assert principal.session is not None
    settings = runtime(request).settings
    generated = await app_onboarding.generate_qr(
        admin=principal.user,
        console_session=principal.session,
        ip=request_ip(request),
        settings=settings,
    )
    payload, svg = await app_qr(generated, settings)
    return view_response(
        AppQrResponse(
            qr_svg=str(svg),
            payload=AppQrPayload.model_validate(payload),
            expires_at_iso=generated.session.expires_at,
        ),
        status=201,
        headers=NO_STORE,
    )


async def exchange_token(request: Request) -> Response:
    state = runtime(request)
    body = await parse_body(request, AppExchangeRequest)
    issued = await app_onboarding.exchange(
        token=body.token,
        details=app_onboarding.AppDetails(
            name=body.device_name, platform=body.platform, identifier=body.device_identifier
        ),
        ip=request_ip(request),
        limiter=state.rate_limiter,
        settings=state.settings,
        presence=state.presence,
    )
    return _tokens(request, issued)


async def refresh(request: Request) -> Response:
    state = runtime(request)
    body = await parse_body(request, AppRefreshRequest)
    issued = await app_credentials.refresh(
        refresh_token=body.refresh_token,
        ip=request_ip(request),
        settings=state.settings,
        presence=state.presence,
    )
    return _tokens(request, issued)


async def list_devices(request: Request) -> Response:
    principal = await require_reader(request)
    devices = await app_onboarding.list_devices(
        owner=principal.user, presence=runtime(request).presence
    )
    return view_response(
        AppDeviceListResponse(
            items=[app_device_view(d, this_device=principal.app_device_id) for d in devices]
        ),
        headers=NO_STORE,
    )


async def revoke_device(request: Request) -> Response:
    principal = await require_admin(request)
    device_id: UUID = request.path_params["device_id"]
    await app_onboarding.revoke(
        device_id=device_id,
        admin=principal.user,
        ip=request_ip(request),
        presence=runtime(request).presence,
    )
    return Response(status_code=204)


routes = [
    Route("/app/generate-qr", generate_qr, methods=["POST"]),
    Route("/app/exchange-token", exchange_token, methods=["POST"]),
    Route("/app/refresh", refresh, methods=["POST"]),
    Route("/app/devices", list_devices, methods=["GET"]),
    Route("/app/devices/{device_id:uuid}", revoke_device, methods=["DELETE"]),
]
# The app holds no cookie when it exchanges or refreshes its tokens.
CSRF_EXEMPT = (r"/app/(exchange-token|refresh)$",)
