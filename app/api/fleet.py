"""Admin API for the fleet as a whole: its counts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import clock
from app.edge.access import require_reader
from app.edge.presenters import fleet_summary_view
from app.edge.responses import view_response
from app.edge.runtime import runtime
from app.services import fleet_summary


async def summary(request: Request) -> Response:
    await require_reader(request)
    state = runtime(request)
    counts = await fleet_summary.summary(
        now=clock.now(), settings=state.settings, presence=state.presence
    )
    return view_response(fleet_summary_view(counts))


routes = [Route("/fleet/summary", summary, methods=["GET"])]
