"""The device runtime API (DESIGN §5): access tokens, heartbeats, push tokens, rotation, JWKS."""

from __future__ import annotations

from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import clock
from app.api.bodies import parse_body
from app.api.idempotency import idempotent
from app.api.responses import AccessTokenResponse, HeartbeatResponse, JwksResponse
from app.api.schemas import CredentialsRequest, HeartbeatRequest, PushTokenRequest
from app.auth.jwt import DEVICE_AUDIENCE, DEVICE_TOKEN_TYPE, AccessClaims, CredentialWindow
from app.edge.bearer import require_device
from app.edge.presenters import credentials_view
from app.edge.responses import NO_STORE, view_response
from app.edge.runtime import request_ip, runtime
from app.edge.views import iso
from app.errors import TokenRevoked
from app.services import credential_expiry, credentials, heartbeats
from app.settings import Settings


def installation(body: CredentialsRequest) -> str | None:
    """The canonical text of the app install's id, whatever case or form it was sent in."""
    return str(body.installation_id) if body.installation_id is not None else None


async def access_token(request: Request) -> Response:
    state = runtime(request)
    lifetime = state.settings.access_token_lifetime_seconds
    body = await parse_body(request, CredentialsRequest)
    grant = await credentials.exchange(
        device_token=body.device_token,
        device_secret=body.device_secret,
        ip=request_ip(request),
        settings=state.settings,
        presence=state.presence,
        verified=state.verified_pairs,
        installation_id=installation(body),
    )
    token, expires_at = state.keyring.sign(
        token_type=DEVICE_TOKEN_TYPE,
        audience=DEVICE_AUDIENCE,
        subject=grant.device_id,
        token_id=grant.token_id,
        scope=grant.capabilities,
        issued_at=int(clock.now().timestamp()),
        lifetime=lifetime,
        credential=credential_window(grant.issued_at, grant.expires_at, state.settings),
    )
    return view_response(
        AccessTokenResponse(
            access_token=token,
            token_type="Bearer",  # noqa: S106 (the scheme name, not a secret)
            expires_in=lifetime,
            expires_at_iso=clock.from_epoch(expires_at),
        ),
        headers=NO_STORE,
    )


async def heartbeat(request: Request) -> Response:
    state = runtime(request)
    claims = await require_device(request)
    # Judged by the bytes, not by Content-Length: a chunked body is validated like any other.
    body = (
        await parse_body(request, HeartbeatRequest) if await request.body() else HeartbeatRequest()
    )
    await heartbeats.record(
        device_id=claims.subject,
        app_version=body.app_version,
        os_version=body.os_version,
        presence=state.presence,
        limiter=state.heartbeat_limiter,
        settings=state.settings,
    )
    expires_at, rotate_after = await _credential_lifetime(claims, state.settings)
    # The fast path answers these bytes too; tests check them against HeartbeatResponse.
    return view_response(
        HeartbeatResponse(
            next_heartbeat_in_seconds=state.settings.heartbeat_interval_seconds,
            credentials_expire_at_iso=expires_at,
            rotate_after_iso=rotate_after,
        )
    )


def credential_window(
    issued_at: datetime, expires_at: datetime, settings: Settings
) -> CredentialWindow:
    """What the access token tells each heartbeat of the pair it was minted from."""
    rotate_after = credential_expiry.rotate_after(
        issued_at=issued_at, expires_at=expires_at, share=settings.credential_rotate_after
    )
    return CredentialWindow(str(iso(expires_at)), str(iso(rotate_after)))


async def _credential_lifetime(
    claims: AccessClaims, settings: Settings
) -> tuple[datetime, datetime]:
    if claims.credential is not None:
        window = claims.credential
        return (
            datetime.fromisoformat(window.expires_at_iso),
            datetime.fromisoformat(window.rotate_after_iso),
        )
    # A token minted before access tokens carried the window: the database knows it.
    lifetime = await credential_expiry.lifetime_of(claims.token_id, settings=settings)
    if lifetime is None:
        raise TokenRevoked
    return lifetime


async def push_token(request: Request) -> Response:
    claims = await require_device(request)
    body = await parse_body(request, PushTokenRequest)
    await heartbeats.update_push_token(
        device_id=claims.subject,
        push_token=body.push_token.lower(),
        apns_environment=body.apns_environment,
    )
    return Response(status_code=204)


@idempotent("rotate")
async def rotate(request: Request) -> Response:
    state = runtime(request)
    body = await parse_body(request, CredentialsRequest)
    issued = await credentials.rotate(
        device_token=body.device_token,
        device_secret=body.device_secret,
        ttl=timedelta(days=state.settings.device_credential_ttl_days),
        ip=request_ip(request),
        settings=state.settings,
        presence=state.presence,
        installation_id=installation(body),
    )
    return view_response(credentials_view(issued), headers=NO_STORE)


async def jwks(request: Request) -> Response:
    return view_response(
        JwksResponse.model_validate(runtime(request).keyring.jwks()),
        headers={"Cache-Control": "public, max-age=300"},
    )


routes = [
    Route("/token", access_token, methods=["POST"]),
    Route("/heartbeat", heartbeat, methods=["POST"]),
    Route("/push-token", push_token, methods=["PUT"]),
    Route("/credentials/rotate", rotate, methods=["POST"]),
]
jwks_routes = [Route("/jwks.json", jwks, methods=["GET"])]
