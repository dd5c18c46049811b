"""HTTP request metrics: a count by route template and status, and a latency histogram.

Labelled by the route's template (`/api/v1/admin/devices/{device_id}`), never by the path a
client sent, so neither ids nor probes for paths that do not exist grow the label set.
"""

from __future__ import annotations

from starlette.routing import Mount
from starlette.types import Scope

from app.metrics import HTTP_DURATION, HTTP_REQUESTS

UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "OTHER"
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


def route_template(scope: Scope, root_path: str) -> str:
    """The template of the route the router chose; `root_path` is the server's own."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if route is None or path is None:
        return UNMATCHED
    # Each Mount the router passed added its prefix to root_path; the route's path is the rest.
    prefix = str(scope.get("root_path", ""))[len(root_path) :]
    if isinstance(route, Mount):
        # Still the Mount: a router under it found nothing, or a mounted app that is not a
        # router (static files) answered, and its own paths are its business.
        return UNMATCHED if route.routes else f"{prefix}/{{path}}"
    return f"{prefix}{path}"
