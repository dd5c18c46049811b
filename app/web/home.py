"""The signed-in landing page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth.access import require_reader
from app.web.rendering import render


async def home(request: Request) -> Response:
    principal = await require_reader(request)
    return render(request, "home.html", {"user": principal.user})


routes = [Route("/", home, methods=["GET"])]
