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
# Answers a retry must not get again: a conflict or a rate limit may be over by then.
_NOT_KEPT = frozenset({409, 429})

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
    try:
        response = await endpoint(request)
    except (DomainError, BodyValidationFailed) as exc:
        # The refusal is the answer: rendered here so that it can be kept like any other.
        response = await handler_for(exc)(request, exc)
    except BaseException:
        await idempotency.release(held)
        raise
    if response.status_code >= 500 or response.status_code in _NOT_KEPT:
        await idempotency.release(held)
        return response
    await idempotency.keep(
        held,
        idempotency.Answer(
            status=response.status_code,
            body=bytes(response.body),
            media_type=response.media_type or "",
        ),
        settings=settings,
    )
    return response
