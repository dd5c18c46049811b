"""The admin console: server-rendered pages with htmx."""

from __future__ import annotations

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from app.edge.routing import RouteGroup
from app.web import audit_log, auth, fleet, mobile_app, pairing, webhooks
from app.web.rendering import STATIC_DIR

GROUPS = [
    # Sign-in through the console form is checked even before a session exists (login CSRF).
    RouteGroup("", [*auth.routes, *fleet.home_routes], csrf_required=(r"/login$",)),
    RouteGroup(
        "/admin",
        [
            *fleet.routes,
            *pairing.routes,
            *audit_log.routes,
            *mobile_app.routes,
            *webhooks.routes,
        ],
    ),
    RouteGroup("", [Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static")]),
]

__all__ = ["GROUPS"]
