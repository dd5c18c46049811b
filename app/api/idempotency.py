"""`Idempotency-Key` on the operations a lost response would otherwise make unsafe to retry:
register, poll, rotate and deregister.

The answer is taken before anything else looks at the request: a retry of a rotation
presents the pair the first request already rotated out, and must get the new pair back
rather than be judged as a stolen copy. The caller is part of the request the key is bound
to (its bearer token or session cookie, besides method, path and body), so only the client
that sent the first request can have its answer replayed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from app.api.errors import handler_for
from app.edge.cookies import SESSION_COOKIE
from app.edge.responses import NO_STORE
from app.edge.runtime import runtime
from app.errors import BodyValidationFailed, DomainError, InvalidInput
from app.services import idempotency

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Visible ASCII, as long as Stripe allows: a UUID fits with room to spare.
_KEY_SHAPE = re.compile(r"[\x21-\x7e]{1,255}")
# Answers a retry must not get again: a conflict or a rate limit may be over by then, and
# a missing or refused credential (or CSRF header) may be put right in the retry.
_NOT_KEPT = frozenset({401, 403, 409, 429})

Endpoint = Callable[[Request], Awaitable[Response]]


def idempotent(operation: str) -> Callable[[Endpoint], Endpoint]:
    """Honour `Idempotency-Key` on `endpoint`; without the header it runs as ever."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def answer(request: Request) -> Response:
            key = request.headers.get(HEADER)
            if key is None:
                return await endpoint(request)
            return await _answer_once(request, endpoint, operation, key)

        return answer

    return decorate


async def _answer_once(request: Request, endpoint: Endpoint, operation: str, key: str) -> Response:
    if not _KEY_SHAPE.fullmatch(key):
        raise InvalidInput(f"{HEADER} must be 1 to 255 visible ASCII characters.")
    settings = runtime(request).settings
    digest = idempotency.request_digest(
        settings,
        request.method.encode(),
        request.url.path.encode(),
        request.headers.get("authorization", "").encode(),
        request.cookies.get(SESSION_COOKIE, "").encode(),
        await request.body(),
    )
    held = await idempotency.claim(operation=operation, key=key, request=digest, settings=settings)
    if isinstance(held, idempotency.Answer):
        return Response(
            held.body,
            status_code=held.status,
            media_type=held.media_type or None,
            headers={**NO_STORE, REPLAYED_HEADER: "true"},
        )
    return await idempotency.act_once(
        held,
        lambda: _answered(request, endpoint),
        lambda response: _answer_of(response) if _is_kept(response) else None,
        settings=settings,
    )


async def _answered(request: Request, endpoint: Endpoint) -> Response:
    try:
        return await endpoint(request)
    except (DomainError, BodyValidationFailed) as exc:
        # A refusal is an answer: rendered here so that it can be kept like any other, and
        # what the service wrote on the way (an audit row, a burn count) is committed.
        return await handler_for(exc)(request, exc)


def _is_kept(response: Response) -> bool:
    return response.status_code < 500 and response.status_code not in _NOT_KEPT


def _answer_of(response: Response) -> idempotency.Answer:
    return idempotency.Answer(
        status=response.status_code,
        body=bytes(response.body),
        media_type=response.media_type or "",
    )
