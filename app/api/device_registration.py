"""The scanner side of pairing: POST /api/devices/register and /register/poll."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.bodies import parse_body
from app.api.idempotency import idempotent
from app.api.responses import PendingApprovalResponse
from app.api.schemas import PollRequest, RegisterRequest
from app.edge.presenters import credentials_view
from app.edge.responses import NO_STORE, view_response
from app.edge.runtime import request_ip, runtime
from app.services import pairing, pairing_approval
from app.services.credentials import DeviceDetails, IssuedCredentials


def _issued(issued: IssuedCredentials) -> Response:
    return view_response(credentials_view(issued), status=201, headers=NO_STORE)


@idempotent("register")
async def register(request: Request) -> Response:
    state = runtime(request)
    body = await parse_body(
        request, RegisterRequest, context={"capabilities": state.settings.supported_capabilities}
    )
    outcome = await pairing.register(
        code=body.code,
        device_challenge=body.code_challenge,
        details=DeviceDetails(
            label=body.label,
            platform=body.platform,
            model=body.model,
            os_version=body.os_version,
            app_version=body.app_version,
            apns_environment=body.apns_environment,
            capabilities=tuple(body.capabilities),
            push_token=body.push_token.lower() if body.push_token else None,
        ),
        proof=body.pairing_proof,
        ip=request_ip(request),
        user_agent=request.headers.get("user-agent"),
        limiter=state.rate_limiter,
        settings=state.settings,
    )
    if isinstance(outcome, IssuedCredentials):
        return _issued(outcome)
    return view_response(
        PendingApprovalResponse(
            status="pending_approval",
            pairing_id=outcome.session.id,
            check_code=outcome.check_code,
            interval=outcome.interval,
            expires_at_iso=outcome.session.expires_at,
        ),
        status=202,
        headers=NO_STORE,
    )


@idempotent("poll")
async def poll(request: Request) -> Response:
    body = await parse_body(request, PollRequest)
    issued = await pairing_approval.poll(
        pairing_id=body.pairing_id,
        code_verifier=body.code_verifier,
        ip=request_ip(request),
        user_agent=request.headers.get("user-agent"),
        settings=runtime(request).settings,
    )
    return _issued(issued)


routes = [
    Route("/register", register, methods=["POST"]),
    Route("/register/poll", poll, methods=["POST"]),
]
