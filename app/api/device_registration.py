"""The scanner side of pairing: POST /api/devices/register and /register/poll."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.bodies import parse_body
from app.api.responses import json_response
from app.api.schemas import PollRequest, RegisterRequest
from app.api.views import credentials_view, iso
from app.auth.client_ip import client_ip
from app.services import pairing
from app.services.credentials import DeviceDetails, IssuedCredentials
from app.settings import Settings

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _issued(issued: IssuedCredentials) -> Response:
    return json_response(credentials_view(issued), status=201, headers=NO_STORE)


async def register(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    body = await parse_body(
        request, RegisterRequest, context={"capabilities": settings.supported_capabilities}
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
        ip=client_ip(request, settings.trusted_proxy_hops),
        limiter=request.app.state.rate_limiter,
        settings=settings,
    )
    if isinstance(outcome, IssuedCredentials):
        return _issued(outcome)
    return json_response(
        {
            "status": "pending_approval",
            "pairingId": str(outcome.session.id),
            "checkCode": outcome.check_code,
            "interval": outcome.interval,
            "expiresAtIso": iso(outcome.session.expires_at),
        },
        status=202,
        headers=NO_STORE,
    )


async def poll(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    body = await parse_body(request, PollRequest)
    issued = await pairing.poll(
        pairing_id=body.pairing_id,
        code_verifier=body.code_verifier,
        ip=client_ip(request, settings.trusted_proxy_hops),
        settings=settings,
    )
    return _issued(issued)


routes = [
    Route("/api/devices/register", register, methods=["POST"]),
    Route("/api/devices/register/poll", poll, methods=["POST"]),
]
