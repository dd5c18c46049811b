"""The Register device dialog: a live code, its QR, and the pending device to approve."""

from __future__ import annotations

import contextlib
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import clock
from app.edge.access import principal_of, require_admin, require_reader
from app.edge.presenters import iso, pairing_session_view
from app.edge.qr import qr_svg
from app.edge.responses import NO_STORE
from app.edge.runtime import request_ip, runtime
from app.errors import DomainError
from app.services import devices, pairing, pairing_approval, pairing_codes
from app.web.fleet import PLATFORMS
from app.web.rendering import render


async def register_dialog(request: Request) -> Response:
    principal = await require_admin(request)
    minted = await pairing.mint(
        admin=principal.user, ip=request_ip(request), settings=runtime(request).settings
    )
    return render(
        request,
        "partials/register_dialog.html",
        {
            "session": pairing_session_view(minted.session, now=clock.now()).wire(),
            "code": pairing_codes.display(minted.code),
            "qr": await qr_svg(minted.pairing_uri, title="Pairing QR code"),
            "pairing_uri": minted.pairing_uri,
            "server_now": iso(clock.now()),
        },
        headers=NO_STORE,
    )


async def _status(request: Request, session_id: UUID, message: str | None = None) -> Response:
    session = await pairing.get(session_id=session_id)
    view = pairing_session_view(session, now=clock.now()).wire()
    if "deviceId" in view:
        view["deviceLabel"] = (await devices.get_device(UUID(view["deviceId"]))).label
    principal = principal_of(request)
    return render(
        request,
        "partials/pairing_status.html",
        {
            "session": view,
            "message": message,
            "platforms": PLATFORMS,
            "can_decide": principal is not None
            and principal.is_admin
            and session.created_by_id == principal.user.id,
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
        await pairing_approval.approve(
            session_id=session_id, admin=principal.user, capabilities=chosen, ip=request_ip(request)
        )
    except DomainError as exc:
        return await _status(request, session_id, exc.message)
    return await _status(request, session_id)


async def reject(request: Request) -> Response:
    principal = await require_admin(request)
    session_id: UUID = request.path_params["session_id"]
    try:
        await pairing_approval.reject(
            session_id=session_id, admin=principal.user, ip=request_ip(request)
        )
    except DomainError as exc:
        return await _status(request, session_id, exc.message)
    return await _status(request, session_id)


async def cancel(request: Request) -> Response:
    principal = await require_admin(request)
    session_id: UUID = request.path_params["session_id"]
    # Already used or expired: nothing is left to cancel, and the dialog closes all the same.
    with contextlib.suppress(DomainError):
        await pairing_approval.cancel(
            session_id=session_id, admin=principal.user, ip=request_ip(request)
        )
    return Response("", headers=NO_STORE)


routes = [
    Route("/devices/register", register_dialog, methods=["POST"]),
    Route("/pairing/{session_id:uuid}", status, methods=["GET"]),
    Route("/pairing/{session_id:uuid}/approve", approve, methods=["POST"]),
    Route("/pairing/{session_id:uuid}/reject", reject, methods=["POST"]),
    Route("/pairing/{session_id:uuid}/cancel", cancel, methods=["POST"]),
]
