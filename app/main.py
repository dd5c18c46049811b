"""create_app(settings): routes, middleware and the lifespan that owns every backend."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from asgi_correlation_id import CorrelationIdMiddleware
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from tortoise.contrib.starlette import RegisterTortoise

from app import db
from app.api import (
    admin_app,
    audit_log,
    device_registration,
    device_runtime,
    devices,
    health,
    pairing_sessions,
    users,
)
from app.api import auth as api_auth
from app.api.errors import API_EXCEPTION_HANDLERS
from app.api.heartbeat_fast_path import HeartbeatFastPath
from app.auth import sessions
from app.auth.ratelimit import RateLimiter
from app.jobs import JobContext
from app.logging import configure_logging, get_logger
from app.middleware import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    ConsoleCSRFMiddleware,
    SecurityHeadersMiddleware,
)
from app.presence import create_store
from app.services import signing_keys
from app.settings import Settings, load_settings
from app.web import audit_log as web_audit_log
from app.web import auth as web_auth
from app.web import fleet, mobile_app, pairing
from app.web.errors import handle_web_error
from app.web.rendering import STATIC_DIR
from app.worker import EmbeddedScheduler

log = get_logger(__name__)

Handler = Callable[[Request, Exception], Awaitable[Response]]

# Paths where no browser session acts: device clients and token exchanges carry no cookie.
CSRF_EXEMPT = [
    r"^/api/devices/",
    r"^/api/v1/auth/login$",
    r"^/api/v1/admin/app/(exchange-token|refresh)$",
]
# Sign-in through the console form is checked even before a session exists (login CSRF).
CSRF_REQUIRED = [r"^/login$"]


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/.well-known/", "/healthz", "/readyz"))


def _dispatch(api_handler: Handler) -> Handler:
    async def handler(request: Request, exc: Exception) -> Response:
        if _is_api(request):
            return await api_handler(request, exc)
        return await handle_web_error(request, exc)

    return handler


async def _refresh_keyring(app: Starlette, settings: Settings) -> None:
    """Pick up a signing key rotated by another process (`polaris rotate-signing-key`)."""
    while True:
        await asyncio.sleep(signing_keys.REFRESH_SECONDS)
        try:
            app.state.keyring = await signing_keys.refreshed(app.state.keyring, settings)
        except Exception as exc:  # the current keys stay in use; try again next time
            log.warning("keyring_refresh_failed", error=type(exc).__name__)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    configure_logging(level=settings.log_level, as_json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = (
            Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
            if settings.redis_url
            else None
        )
        app.state.redis = redis
        app.state.rate_limiter = RateLimiter.for_backend(redis)
        # Per process on purpose: a shared counter would cost a Redis call per heartbeat.
        app.state.heartbeat_limiter = RateLimiter.for_backend(None)
        async with RegisterTortoise(app, config=db.tortoise_config(settings.database_url)):
            app.state.keyring = await signing_keys.load_keyring(settings)
            app.state.presence = create_store(settings)
            await app.state.presence.start()
            keyring_refresh = asyncio.create_task(_refresh_keyring(app, settings))
            scheduler = None
            if settings.is_embedded and settings.embedded_scheduler:
                scheduler = EmbeddedScheduler(JobContext(settings, app.state.presence))
                await scheduler.start()
            log.info(
                "started",
                environment=settings.environment.value,
                database=settings.database_url.split("://", 1)[0],
                embedded=settings.is_embedded,
            )
            try:
                yield
            finally:
                keyring_refresh.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keyring_refresh
                if scheduler is not None:
                    await scheduler.stop()
                await app.state.presence.stop()
                if redis is not None:
                    await redis.aclose(close_connection_pool=True)

    routes = [
        *health.routes,
        *api_auth.routes,
        *users.routes,
        *device_registration.routes,
        *device_runtime.routes,
        *pairing_sessions.routes,
        *devices.routes,
        *audit_log.routes,
        *admin_app.routes,
        *web_auth.routes,
        *fleet.routes,
        *pairing.routes,
        *web_audit_log.routes,
        *mobile_app.routes,
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    middleware = [
        # Outermost: the heartbeats it answers skip every layer below.
        Middleware(HeartbeatFastPath, settings=settings),
        Middleware(CorrelationIdMiddleware, header_name="X-Request-ID"),
        Middleware(AccessLogMiddleware),
        Middleware(SecurityHeadersMiddleware, hsts=settings.cookie_secure),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes),
        Middleware(
            ConsoleCSRFMiddleware,
            secret=settings.secret,
            cookie_name=sessions.CSRF_COOKIE,
            header_name=sessions.CSRF_HEADER,
            cookie_secure=settings.cookie_secure,
            sensitive_cookies={sessions.SESSION_COOKIE},
            required_urls=CSRF_REQUIRED,
            exempt_urls=CSRF_EXEMPT,
        ),
    ]
    handlers = {exc: _dispatch(handler) for exc, handler in API_EXCEPTION_HANDLERS.items()}
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=handlers,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
