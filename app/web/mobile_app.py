"""The Mobile app page: connect the admin app by QR code, see and revoke connected devices."""

from __future__ import annotations

import contextlib
from uuid import UUID

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from app import clock
from app.edge.access import Principal, require_admin, require_console_admin, require_reader
from app.edge.presenters import app_device_view, iso
from app.edge.qr import app_qr
from app.edge.responses import NO_STORE
from app.edge.runtime import request_ip, runtime
from app.errors import Conflict, DomainError, NotFound
from app.services import app_onboarding
from app.web.rendering import render

PLATFORMS = {"ios": "iOS", "android": "Android"}
LIVE_REFRESH_SECONDS = 10
# Fired when a QR code was used, so the device list reloads without waiting for its timer.
DEVICES_CHANGED = "app-devices-changed"


async def _devices_context(request: Request, principal: Principal) -> dict[str, object]:
    devices = await app_onboarding.list_devices(
        owner=principal.user, presence=runtime(request).presence
    )
    return {
        "devices": [app_device_view(d).wire() for d in devices],
        "platforms": PLATFORMS,
        "can_write": principal.is_admin,
        "refresh_seconds": LIVE_REFRESH_SECONDS,
    }


async def page(request: Request) -> Response:
    principal = await require_reader(request)
    context = await _devices_context(request, principal)
    return render(request, "mobile_app.html", context, headers=NO_STORE)


async def devices(request: Request) -> Response:
    principal = await require_reader(request)
    context = await _devices_context(request, principal)
    return render(request, "partials/app_devices.html", context, headers=NO_STORE)


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
    _, svg = await app_qr(generated, settings)
    return render(
        request,
        "partials/app_qr.html",
        {
            "session_id": str(generated.session.id),
            "state": "minted",
            "qr": svg,
            "expires_at": iso(generated.session.expires_at),
            "server_now": iso(clock.now()),
        },
        headers=NO_STORE,
    )


async def qr_status(request: Request) -> Response:
    principal = await require_admin(request)
    status = await app_onboarding.qr_status(
        session_id=request.path_params["session_id"], admin=principal.user
    )
    headers = dict(NO_STORE)
    if status.device is not None:
        headers["HX-Trigger"] = DEVICES_CHANGED
    return render(
        request,
        "partials/app_qr_status.html",
        {
            "session_id": str(status.session.id),
            "state": status.state,
            "device_name": status.device.label if status.device else None,
        },
        headers=headers,
    )


async def cancel_qr(request: Request) -> Response:
    principal = await require_admin(request)
    session_id: UUID = request.path_params["session_id"]
    # Used or expired already: nothing is left to cancel, and the code goes away all the same.
    with contextlib.suppress(DomainError):
        await app_onboarding.cancel(
            session_id=session_id, admin=principal.user, ip=request_ip(request)
        )
    return HTMLResponse("", headers=NO_STORE)


async def revoke(request: Request) -> Response:
    principal = await require_admin(request)
    # Revoked meanwhile (another tab, the app itself): the list shows it gone all the same.
    with contextlib.suppress(NotFound, Conflict):
        await app_onboarding.revoke(
            device_id=request.path_params["device_id"],
            admin=principal.user,
            ip=request_ip(request),
            presence=runtime(request).presence,
        )
    context = await _devices_context(request, principal)
    return render(request, "partials/app_devices.html", context, headers=NO_STORE)


routes = [
    Route("/mobile-app", page, methods=["GET"]),
    Route("/mobile-app/devices", devices, methods=["GET"]),
    Route("/mobile-app/devices/{device_id:uuid}/revoke", revoke, methods=["POST"]),
    Route("/mobile-app/qr", generate_qr, methods=["POST"]),
    Route("/mobile-app/qr/{session_id:uuid}", qr_status, methods=["GET"]),
    Route("/mobile-app/qr/{session_id:uuid}/cancel", cancel_qr, methods=["POST"]),
]
