"""`GET /metrics`: Prometheus text, behind a bearer token (`METRICS_TOKEN`).

Without a token configured it is served in development mode only: what a scrape reveals
(traffic, fleet size, failure rates) is not for the open internet.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import clock, metrics
from app.api.health import database_ok, redis_ok
from app.edge.runtime import Runtime, runtime
from app.errors import NotAuthenticated, NotFound
from app.logging import get_logger
from app.metrics import Reading
from app.settings import Environment

log = get_logger(__name__)


def _authorise(request: Request, state: Runtime) -> None:
    settings = state.settings
    if not settings.metrics_enabled:
        raise NotFound
    if settings.metrics_token is None:
        if settings.environment is not Environment.DEVELOPMENT:
            raise NotFound("Set METRICS_TOKEN to serve /metrics outside development mode.")
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expected = settings.metrics_token.get_secret_value()
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), expected.encode()
    ):
        raise NotAuthenticated("Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.")


def _backend_up(backend: str, answered: bool) -> Reading:
    return Reading(
        "polaris_backend_up",
        "Whether a backend answered this scrape's check (1) or not (0).",
        float(answered),
        {"backend": backend},
    )


async def _readings(state: Runtime) -> list[Reading]:
    window = timedelta(seconds=state.settings.heartbeat_online_window_seconds)
    readings = [_backend_up("database", await database_ok())]
    if state.redis is not None:
        readings.append(_backend_up("redis", await redis_ok(state.redis)))
    try:
        online = await state.presence.count_seen_since((clock.now() - window).timestamp())
    except Exception as exc:
        # The scrape still answers: `polaris_backend_up` says what is wrong.
        log.warning("metrics_presence_failed", error=type(exc).__name__)
    else:
        readings.append(
            Reading("polaris_devices_online", "Devices heard from in the online window.", online)
        )
    return readings


async def scrape(request: Request) -> Response:
    state = runtime(request)
    _authorise(request, state)
    body = metrics.exposition(await _readings(state))
    return Response(body, media_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})


routes = [Route("/metrics", scrape, methods=["GET"])]
