"""create_app(settings): the route groups, the middleware stack and the lifespan that owns
every backend."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgi_correlation_id import CorrelationIdMiddleware
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from tortoise.contrib.starlette import RegisterTortoise

from app import api, db, metrics, web
from app.api.errors import API_EXCEPTION_HANDLERS, Handler
from app.api.heartbeat_fast_path import HeartbeatFastPath
from app.auth.ratelimit import RateLimiter
from app.edge.cookies import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from app.edge.middleware import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    ConsoleCSRFMiddleware,
    SecurityHeadersMiddleware,
    new_request_id,
    security_headers,
)
from app.edge.runtime import Runtime, runtime
from app.jobs import JobContext
from app.logging import configure_logging, flush_access_log, get_logger
from app.presence import create_store
from app.scheduler import EmbeddedScheduler
from app.services import signing_keys
from app.services.revocations import DatabaseRevocations
from app.services.verified_pairs import VerifiedPairs
from app.settings import Settings, load_settings
from app.web.errors import handle_web_error

log = get_logger(__name__)

GROUPS = [*api.GROUPS, *web.GROUPS]
API_PREFIXES = ("/api/", "/.well-known/", "/healthz", "/readyz", "/metrics")


def middleware_stack(settings: Settings) -> list[Middleware]:
    """Outermost first."""
    return [
        # The heartbeats it answers skip every layer below (and log and count themselves).
        Middleware(HeartbeatFastPath, settings=settings),
        Middleware(CorrelationIdMiddleware, header_name="X-Request-ID", generator=new_request_id),
        Middleware(AccessLogMiddleware, metrics=settings.metrics_enabled),
        Middleware(SecurityHeadersMiddleware, hsts=settings.cookie_secure),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes),
        Middleware(
            ConsoleCSRFMiddleware,
            secret=settings.secret,
            cookie_name=CSRF_COOKIE,
            header_name=CSRF_HEADER,
            cookie_secure=settings.cookie_secure,
            sensitive_cookies={SESSION_COOKIE},
            required_urls=[p for group in GROUPS for p in group.csrf_required_paths()],
            exempt_urls=[p for group in GROUPS for p in group.csrf_exempt_paths()],
        ),
    ]


def _answered_by_edge(api_handler: Handler) -> Handler:
    """The API answers problem+json; the console answers with pages and redirects."""

    async def handler(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(API_PREFIXES):
            return await api_handler(request, exc)
        return await handle_web_error(request, exc)

    return handler


def _with_security_headers(handler: Handler, *, hsts: bool) -> Handler:
    raw = security_headers(hsts=hsts)

    async def answer(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        present = {name for name, _ in response.raw_headers}
        response.raw_headers.extend(h for h in raw if h[0] not in present)
        return response

    return answer


def exception_handlers(settings: Settings) -> dict[type[Exception], Handler]:
    handlers = {exc: _answered_by_edge(h) for exc, h in API_EXCEPTION_HANDLERS.items()}
    # Starlette runs the `Exception` handler in its outermost layer, outside
    # SecurityHeadersMiddleware: without this a 500 goes out with none of the headers.
    handlers[Exception] = _with_security_headers(handlers[Exception], hsts=settings.cookie_secure)
    return handlers


async def _refresh_keyring(state: Runtime) -> None:
    """Pick up a signing key rotated by another process (`polaris rotate-signing-key`)."""
    while True:
        await asyncio.sleep(signing_keys.REFRESH_SECONDS)
        try:
            state.keyring = await signing_keys.refreshed(state.keyring, state.settings)
        except Exception as exc:  # the current keys stay in use; try again next time
            log.warning("keyring_refresh_failed", error=type(exc).__name__)


@asynccontextmanager
async def _background(state: Runtime) -> AsyncIterator[None]:
    """The keyring refresh, the metrics tallies' flush, and the jobs when embedded, for as
    long as the app serves."""
    keyring_refresh = asyncio.create_task(_refresh_keyring(state))
    metrics_flush = asyncio.create_task(metrics.flush_tallies_forever())
    scheduler = None
    if state.settings.is_embedded and state.settings.embedded_scheduler:
        scheduler = EmbeddedScheduler(JobContext(state.settings, state.presence))
        await scheduler.start()
    try:
        yield
    finally:
        for task in (keyring_refresh, metrics_flush):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if scheduler is not None:
            await scheduler.stop()


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    redis = (
        Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        if settings.redis_url
        else None
    )
    try:
        async with RegisterTortoise(app, config=db.tortoise_config(settings.database_url)):
            app.state.runtime = Runtime(
                settings=settings,
                redis=redis,
                rate_limiter=RateLimiter.for_backend(redis),
                heartbeat_limiter=RateLimiter.for_backend(None),
                presence=create_store(settings, DatabaseRevocations()),
                verified_pairs=VerifiedPairs(
                    size=settings.verified_pairs_size, ttl=settings.verified_pairs_seconds
                ),
                keyring=await signing_keys.load_keyring(settings),
            )
            state = runtime(app)
            await state.presence.start()
            metrics.process_started()
            try:
                async with _background(state):
                    log.info(
                        "started",
                        environment=settings.environment.value,
                        database=settings.database_url.split("://", 1)[0],
                        embedded=settings.is_embedded,
                    )
                    yield
            finally:
                try:
                    metrics.process_stopped()
                    await state.presence.stop()
                finally:
                    flush_access_log()
    finally:
        if redis is not None:
            await redis.aclose(close_connection_pool=True)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    configure_logging(level=settings.log_level, as_json=settings.log_json)
    app = Starlette(
        routes=[route for group in GROUPS for route in group.mounted()],
        middleware=middleware_stack(settings),
        exception_handlers=exception_handlers(settings),
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
