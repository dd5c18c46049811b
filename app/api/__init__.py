"""JSON APIs: the device API under /api/devices and the admin API under /api/v1."""

from __future__ import annotations

from app.api import (
    admin_app,
    audit_log,
    auth,
    device_registration,
    device_runtime,
    devices,
    fleet,
    health,
    metrics,
    openapi,
    pairing_sessions,
    users,
    webhooks,
)
from app.edge.routing import RouteGroup

GROUPS = [
    RouteGroup("", [*health.routes, *metrics.routes, *openapi.routes]),
    # Device clients carry no cookie: nothing for CSRF to protect.
    RouteGroup(
        "/api/devices",
        [*device_registration.routes, *device_runtime.routes],
        csrf_exempt=(r"/",),
    ),
    RouteGroup("/.well-known", device_runtime.jwks_routes),
    RouteGroup("/api/v1/auth", auth.routes, csrf_exempt=auth.CSRF_EXEMPT),
    RouteGroup(
        "/api/v1/admin",
        [
            *users.routes,
            *pairing_sessions.routes,
            *devices.routes,
            *fleet.routes,
            *audit_log.routes,
            *admin_app.routes,
            *webhooks.routes,
        ],
        csrf_exempt=admin_app.CSRF_EXEMPT,
    ),
]

__all__ = ["GROUPS"]
