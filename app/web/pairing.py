"""The Register device dialog: a live code, its QR, and the pending device to approve."""

from __future__ import annotations

import contextlib
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import clock
from app.api.actors import request_ip
from app.api.views import iso, pairing_session_view
from app.auth.access import require_admin, require_reader
from app.services import devices, pairing, pairing_codes
from app.services.errors import DomainError
from app.web.qr import qr_svg
from app.web.rendering import render

NO_STORE = {"Cache-Control": "no-store"}


async def register_dialog(request: Request) -> Response:
    principal = await require_admin(request)
    minted = await pairing.mint(
        admin=principal.user, ip=request_ip(request), settings=request.app.state.settings
    )
    return render(
        request,
        "partials/register_dialog.html",
        {
            "session": pairing_session_view(minted.session, now=clock.now()),
            "code": pairing_codes.display(minted.code),
            "qr": await qr_svg(minted.pairing_uri, title="Pairing QR code"),
            "pairing_uri": minted.pairing_uri,
            "server_now": iso(clock.now()),
        },
        headers=NO_STORE,
    )


async def _status(request: Request, session_id: UUID, message: str | None = None) -> Response:
    session = await pairing.get(session_id=session_id)
    view = pairing_session_view(session, now=clock.now())
    if "deviceId" in view:
        view["deviceLabel"] = (await devices.get_device(UUID(view["deviceId"]))).label
    principal = request.scope.get("polaris.principal")
    return render(
        request,
        "partials/pairing_status.html",
        {
            "session": view,
            "message": message,
            "can_decide": principal is not None
            and principal.is_admin
            and session.created_by_id == principal.user.id,  # type: ignore[attr-defined]
        },
        headers=NO_STORE,
    )


async def status(request: Request) -> Response:
    await require_reader(request)
    return await _status(request, request.path_params["session_id"])


async def approve(request: Request) -> Response:
    principal = await require_admin(request)
    session_id: UUID = request.path_params["session_id"]
    form = await request.form()
    chosen = [str(c) for c in form.getlist("capabilities")]
    try:
        await pairing.approve(
            session_id=session_id, admin=principal.user, capabilities=chosen, ip=request_ip(request)
        )
    except DomainError as exc:
        return await _status(request, session_id, exc.message)
    return await _status(request, session_id)


async def reject(request: Request) -> Response:
    principal = await require_admin(request)
    session_id: UUID = request.path_params["session_id"]
    try:
        await pairing.reject(session_id=session_id, admin=principal.user, ip=request_ip(request))
    except DomainError as exc:
        return await _status(request, session_id, exc.message)
    return await _status(request, session_id)


async def cancel(request: Request) -> Response:
    principal = await require_admin(request)
    session_id: UUID = request.path_params["session_id"]
    # Already used or expired: nothing is left to cancel, and the dialog closes all the same.
    with contextlib.suppress(DomainError):
        await pairing.cancel(session_id=session_id, admin=principal.user, ip=request_ip(request))
    return Response("", headers=NO_STORE)


routes = [
    Route("/admin/devices/register", register_dialog, methods=["POST"]),
    Route("/admin/pairing/{session_id:uuid}", status, methods=["GET"]),
    Route("/admin/pairing/{session_id:uuid}/approve", approve, methods=["POST"]),
    Route("/admin/pairing/{session_id:uuid}/reject", reject, methods=["POST"]),
    Route("/admin/pairing/{session_id:uuid}/cancel", cancel, methods=["POST"]),
]
