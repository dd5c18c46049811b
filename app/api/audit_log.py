"""GET /api/v1/admin/audit: the audit log, newest first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.bodies import parse_query
from app.api.responses import AuditLogResponse
from app.api.schemas import AuditQuery
from app.edge.access import require_reader
from app.edge.presenters import audit_view
from app.edge.responses import view_response
from app.services import audit


async def list_events(request: Request) -> Response:
    await require_reader(request)
    query = parse_query(request, AuditQuery)
    page = await audit.list_events(
        action=query.action,
        device_id=str(query.device_id) if query.device_id else None,
        cursor=query.cursor,
        limit=query.limit,
    )
    return view_response(
        AuditLogResponse(items=[audit_view(e) for e in page.items], next_cursor=page.next_cursor)
    )


routes = [Route("/audit", list_events, methods=["GET"])]
