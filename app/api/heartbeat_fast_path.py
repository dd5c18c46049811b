"""`POST /api/devices/heartbeat` answered ahead of the general middleware stack.

Heartbeats are nearly all of the traffic (100k devices every 30 s), and on that path the
generic layers (request id, access log, security headers, body limit, CSRF, routing, a
`Request`) cost more than the heartbeat itself. This layer answers the ordinary case, a
valid device token and a small valid JSON body, with the same status, body, headers and
access-log line as the route in `device_runtime`. The token is checked by the same
`Keyring.verify` the route calls (its signature once per process, then from memory), and
carries the credentials' expiry and rotate-after times the answer tells, so no database read
is needed. Everything else (a token that does not verify, any refusal, a chunked or large
body, an unusual request id) goes down the ordinary stack untouched, where the route decides
it: the rules live there once.
A backing service failing mid-heartbeat is answered by the API's own exception handlers.
"""

from __future__ import annotations

import time

import orjson
from asgi_correlation_id import correlation_id
from asgi_correlation_id.middleware import is_valid_uuid4
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import clock
from app.api.bodies import is_json
from app.api.errors import handler_for
from app.api.schemas import HeartbeatRequest
from app.auth.jwt import (
    DEVICE_AUDIENCE,
    DEVICE_TOKEN_TYPE,
    AccessClaims,
    CredentialWindow,
    InvalidAccessToken,
    Keyring,
)
from app.edge.middleware import log_request, new_request_id, security_headers
from app.edge.runtime import Runtime, runtime
from app.metrics import RouteTally
from app.services import heartbeats
from app.settings import Settings

PATH = "/api/devices/heartbeat"
# A heartbeat body is well under this; anything bigger takes the ordinary path and its limit.
_MAX_FAST_BODY = 4096
_EMPTY = HeartbeatRequest()
# Answers rendered per credential pair; rendering each time cost ~3 µs, a tenth of the path.
_RENDERED_MAX = 200_000


class HeartbeatFastPath:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self._settings = settings
        self._interval = settings.heartbeat_interval_seconds
        self._rendered: dict[CredentialWindow, bytes] = {}
        self._security_headers = security_headers(hsts=settings.cookie_secure)
        self._metrics = RouteTally("POST", PATH) if settings.metrics_enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_heartbeat(scope):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = _request_headers(scope)
        if not _plain_small_request(headers):
            await self.app(scope, receive, send)
            return
        body, complete, disconnected = await _read_body(receive)
        if disconnected:
            # The client went away mid-body: nobody is left to answer.
            return
        replay = _replaying(body, complete, receive)
        state = runtime(scope["app"])
        claims = _valid_claims(headers.get(b"authorization"), state.keyring) if complete else None
        fields = _fields(body, headers.get(b"content-type")) if complete else None
        credential = claims.credential if claims is not None else None
        if (
            claims is None
            or credential is None
            or fields is None
            or await _maybe_revoked(state, claims)
        ):
            await self.app(scope, replay, send)
            return

        request_id = headers.get(b"x-request-id")
        rid = request_id.decode("latin-1") if request_id is not None else new_request_id()
        context = correlation_id.set(rid)
        status = 500
        try:
            status = await self._answer(claims, credential, fields, state, rid, scope, replay, send)
        finally:
            log_request(scope, status, started)
            if self._metrics is not None:
                self._metrics.observe(status, time.perf_counter() - started)
            correlation_id.reset(context)

    async def _answer(
        self,
        claims: AccessClaims,
        credential: CredentialWindow,
        fields: HeartbeatRequest,
        state: Runtime,
        rid: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> int:
        try:
            await heartbeats.record(
                device_id=claims.subject,
                app_version=fields.app_version,
                os_version=fields.os_version,
                presence=state.presence,
                limiter=state.heartbeat_limiter,
                settings=self._settings,
            )
        except Exception as exc:
            # Rate limited, or a backing service failed: answered as by any API route.
            return await self._answer_failure(exc, rid, scope, receive, send)
        body = self._rendered.get(credential) or self._render(credential)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                    *self._security_headers,
                    (b"x-request-id", rid.encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return 200

    def _render(self, credential: CredentialWindow) -> bytes:
        """The route's answer for this credential pair, as `HeartbeatResponse` renders it."""
        if len(self._rendered) >= _RENDERED_MAX:
            # Cheaper than an LRU's bookkeeping on every hit; a re-render costs under 1 µs.
            self._rendered.clear()
        body = orjson.dumps(
            {
                "nextHeartbeatInSeconds": self._interval,
                "credentialsExpireAtIso": credential.expires_at_iso,
                "rotateAfterIso": credential.rotate_after_iso,
            }
        )
        self._rendered[credential] = body
        return body

    async def _answer_failure(
        self, exc: Exception, rid: str, scope: Scope, receive: Receive, send: Send
    ) -> int:
        """A refusal from the service (the per-device rate limit) or a failing backing service:
        problem+json from the API's exception handler for it, as the route would answer."""
        response = await handler_for(exc)(Request(scope, receive), exc)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message["headers"],
                    *self._security_headers,
                    (b"x-request-id", rid.encode("latin-1")),
                ]
            await send(message)

        await response(scope, receive, send_with_headers)
        return response.status_code


def _is_heartbeat(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["path"] == PATH
        and scope["method"] == "POST"
        # Mounted under a prefix, the router sees another path: leave it to the router.
        and not scope.get("root_path")
    )


def _plain_small_request(headers: dict[bytes, bytes]) -> bool:
    """A declared small body, no transfer coding and a usable request id, or the stack
    judges it."""
    length = headers.get(b"content-length")
    request_id = headers.get(b"x-request-id")
    return (
        length is not None
        and length.isdigit()
        and int(length) <= _MAX_FAST_BODY
        # A server may let chunked framing win over Content-Length: never trust the length.
        and b"transfer-encoding" not in headers
        and (request_id is None or is_valid_uuid4(request_id.decode("latin-1")))
    )


def _request_headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by name; a repeated one keeps its first value, as Starlette's."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value)
    return headers


async def _read_body(receive: Receive) -> tuple[bytes, bool, bool]:
    """The body as far as read; whether that is all of it (it stops reading past
    `_MAX_FAST_BODY`, whatever the headers said); whether the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False, True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
        if not more or size > _MAX_FAST_BODY:
            return b"".join(chunks), not more, False


def _replaying(body: bytes, complete: bool, receive: Receive) -> Receive:
    """`receive` as if the body read so far had not been read yet."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": not complete}

    return replay


async def _maybe_revoked(state: Runtime, claims: AccessClaims) -> bool:
    """Whether the route must judge this token: revoked, or the revocation check failed
    (then the route asks again and answers the failure as every route does)."""
    try:
        return await state.presence.is_revoked(claims.token_id)
    except Exception:
        return True


def _valid_claims(authorization: bytes | None, keyring: Keyring) -> AccessClaims | None:
    """Claims of a valid device bearer token; None for anything the route must judge (no
    bearer token, or one it refuses: it verifies again and says why, refreshing the keyring
    for a key it does not know yet).

    A token seen for the first time is verified here rather than by the route: after a
    restart or a wave of new access tokens, that first heartbeat of each would otherwise
    cost the whole middleware stack as well (in a 100,000-device soak's connection phase,
    those heartbeats' way through the route was a quarter of the web process's samples, the
    signature checks a third of that)."""
    scheme, _, token = (authorization or b"").partition(b" ")
    raw = token.strip()
    if scheme.lower() != b"bearer" or not raw:
        return None
    try:
        return keyring.verify(
            raw.decode("latin-1"),
            token_type=DEVICE_TOKEN_TYPE,
            audience=DEVICE_AUDIENCE,
            now=int(clock.now().timestamp()),
        )
    except InvalidAccessToken:
        return None


def _fields(body: bytes, content_type: bytes | None) -> HeartbeatRequest | None:
    """The heartbeat's fields, or None when the ordinary path must judge the body."""
    if not body:
        return _EMPTY
    if content_type is None or not is_json(content_type.decode("latin-1")):
        return None
    try:
        return HeartbeatRequest.model_validate(orjson.loads(body))
    except (orjson.JSONDecodeError, ValidationError):
        return None
