"""The device runtime API (DESIGN §5): access tokens, heartbeats, push tokens, rotation, JWKS."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import clock
from app.api.bodies import parse_body
from app.api.device_registration import NO_STORE
from app.api.responses import json_response
from app.api.schemas import CredentialsRequest, HeartbeatRequest, PushTokenRequest
from app.api.views import credentials_view, iso
from app.auth.bearer import require_device
from app.auth.jwt import DEVICE_AUDIENCE, DEVICE_TOKEN_TYPE
from app.services import credentials, heartbeats
from app.settings import Settings


async def access_token(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    body = await parse_body(request, CredentialsRequest)
    current = await credentials.authenticate(
        device_token=body.device_token,
        device_secret=body.device_secret,
        presence=request.app.state.presence,
    )
    token, expires_at = request.app.state.keyring.sign(
        token_type=DEVICE_TOKEN_TYPE,
        audience=DEVICE_AUDIENCE,
        subject=str(current.device.id),
        token_id=str(current.token.id),
        scope=tuple(current.device.capabilities),
        issued_at=int(clock.now().timestamp()),
        lifetime=settings.access_token_lifetime_seconds,
    )
    return json_response(
        {
            "accessToken": token,
            "tokenType": "Bearer",
            "expiresIn": settings.access_token_lifetime_seconds,
            "expiresAtIso": iso(clock.from_epoch(expires_at)),
        },
        headers=NO_STORE,
    )


async def heartbeat(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    claims = await require_device(request)
    # Judged by the bytes, not by Content-Length: a chunked body is validated like any other.
    body = (
        await parse_body(request, HeartbeatRequest) if await request.body() else HeartbeatRequest()
    )
    await heartbeats.record(
        device_id=claims.subject,
        app_version=body.app_version,
        os_version=body.os_version,
        presence=request.app.state.presence,
        limiter=request.app.state.heartbeat_limiter,
        settings=settings,
    )
    return json_response({"nextHeartbeatInSeconds": settings.heartbeat_interval_seconds})


async def push_token(request: Request) -> Response:
    claims = await require_device(request)
    body = await parse_body(request, PushTokenRequest)
    await heartbeats.update_push_token(
        device_id=claims.subject,
        push_token=body.push_token.lower(),
        apns_environment=body.apns_environment,
    )
    return Response(status_code=204)


async def rotate(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    body = await parse_body(request, CredentialsRequest)
    issued = await credentials.rotate(
        device_token=body.device_token,
        device_secret=body.device_secret,
        ttl=timedelta(days=settings.device_credential_ttl_days),
        presence=request.app.state.presence,
    )
    return json_response(credentials_view(issued), headers=NO_STORE)


async def jwks(request: Request) -> Response:
    return json_response(
        request.app.state.keyring.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


routes = [
    Route("/api/devices/token", access_token, methods=["POST"]),
    Route("/api/devices/heartbeat", heartbeat, methods=["POST"]),
    Route("/api/devices/push-token", push_token, methods=["PUT"]),
    Route("/api/devices/credentials/rotate", rotate, methods=["POST"]),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
]
