"""Admin API for scanner pairing codes: mint, read, approve, reject, cancel."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import clock
from app.api.bodies import parse_body
from app.api.responses import MintedPairingSessionResponse
from app.api.schemas import ApproveRequest
from app.edge.access import require_admin, require_reader
from app.edge.presenters import pairing_session_view
from app.edge.responses import NO_STORE, view_response
from app.edge.runtime import request_ip, runtime
from app.models import PairingSession
from app.services import pairing, pairing_approval, pairing_attempts


async def _session_answer(session: PairingSession) -> Response:
    attempts = await pairing_attempts.recent(session.id)
    view = pairing_session_view(session, now=clock.now(), attempts=attempts)
    return view_response(view, headers=NO_STORE)


async def mint(request: Request) -> Response:
    principal = await require_admin(request)
    minted = await pairing.mint(
        admin=principal.user, ip=request_ip(request), settings=runtime(request).settings
    )
    return view_response(
        MintedPairingSessionResponse(
            pairing_session_id=minted.session.id,
            code=minted.code,
            pairing_uri=minted.pairing_uri,
            expires_at_iso=minted.session.expires_at,
        ),
        status=201,
        headers=NO_STORE,
    )


async def show(request: Request) -> Response:
    await require_reader(request)
    session = await pairing.get(session_id=request.path_params["session_id"])
    return await _session_answer(session)


async def approve(request: Request) -> Response:
    principal = await require_admin(request)
    body = await parse_body(request, ApproveRequest)
    session = await pairing_approval.approve(
        session_id=request.path_params["session_id"],
        admin=principal.user,
        capabilities=body.capabilities,
        ip=request_ip(request),
    )
    return await _session_answer(session)


async def reject(request: Request) -> Response:
    principal = await require_admin(request)
    session = await pairing_approval.reject(
        session_id=request.path_params["session_id"], admin=principal.user, ip=request_ip(request)
    )
    return await _session_answer(session)


async def cancel(request: Request) -> Response:
    principal = await require_admin(request)
    session_id: UUID = request.path_params["session_id"]
    await pairing_approval.cancel(
        session_id=session_id, admin=principal.user, ip=request_ip(request)
    )
    return Response(status_code=204)


routes = [
    Route("/pairing-sessions", mint, methods=["POST"]),
    Route("/pairing-sessions/{session_id:uuid}", show, methods=["GET"]),
    Route("/pairing-sessions/{session_id:uuid}", cancel, methods=["DELETE"]),
    Route("/pairing-sessions/{session_id:uuid}/approve", approve, methods=["POST"]),
    Route("/pairing-sessions/{session_id:uuid}/reject", reject, methods=["POST"]),
]
