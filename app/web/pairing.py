"""The Register device dialog: a live code, its QR, the pending device to approve, and the
refused attempts at the code as they happen."""

from __future__ import annotations

import contextlib
from typing import Any
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
from app.services import devices, pairing, pairing_approval, pairing_attempts, pairing_codes
from app.web.fleet import PLATFORMS
from app.web.rendering import render

# Problem codes as the dialog says them.
REASONS = {
    "invalid_proof": "wrong proof",
    "session_burned": "code already closed",
    "code_expired": "code expired",
    "code_already_used": "code already used",
    "rate_limited": "rate limited",
    "invalid_code": "code not valid",
    "access_denied": "device rejected",
    "expired_token": "approval expired",
}


def reason_in_words(attempt: dict[str, Any]) -> str:
    if attempt["outcome"] == "burned":
        return "wrong proof, closed the code"
    code: str = attempt["reason"]
    return REASONS.get(code, code.replace("_", " "))


def attempts_summary(attempts: list[dict[str, Any]]) -> str | None:
    """The line above the list (newest first): `2 failed attempts: wrong proof from <ip>`."""
    if not attempts:
        return None
    count = len(attempts)
    if count >= pairing_attempts.KEPT_PER_SESSION:
        counted = f"At least {count} failed attempts"
    else:
        counted = f"{count} failed attempt{'s' if count > 1 else ''}"
    last = attempts[0]
    return f"{counted}: {reason_in_words(last)} from {last['ip'] or 'an unknown address'}"


def burned_summary(session: dict[str, Any]) -> str | None:
    """Why a burned code closed, from the attempt that burned it."""
    burn = next((a for a in session["attempts"] if a["outcome"] == "burned"), None)
    if burn is None:
        return None
    return (
        f"Closed after {session['failedAttempts']} wrong proofs; "
        f"last from {burn['ip'] or 'an unknown address'}"
    )


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
    attempts = await pairing_attempts.recent(session.id)
    view = pairing_session_view(session, now=clock.now(), attempts=attempts).wire()
    for attempt in view["attempts"]:
        attempt["reasonText"] = reason_in_words(attempt)
        attempt["atTime"] = attempt["atIso"][11:19]
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
            "attempts_summary": attempts_summary(view["attempts"]),
            "burned_summary": burned_summary(view),
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
