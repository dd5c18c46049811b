"""The audit log page: newest first, filter by action and device."""

from __future__ import annotations

from urllib.parse import urlencode
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.edge.access import require_reader
from app.edge.presenters import audit_view
from app.errors import DomainError
from app.models import AuditAction
from app.services import accounts, audit
from app.web.rendering import render

PAGE_SIZE = 50
# Grouped by what they are about, as the filter lists them.
ACTIONS = sorted(AuditAction, key=lambda action: action.value)


def _device_id(raw: str) -> str | None:
    try:
        return str(UUID(raw.strip())) if raw.strip() else None
    except ValueError:
        return None


async def audit_page(request: Request) -> Response:
    await require_reader(request)
    params = request.query_params
    action = params.get("action", "")
    action = action if action in set(AuditAction) else ""
    device_id = _device_id(params.get("deviceId", ""))
    cursor = params.get("cursor") or None
    try:
        page = await audit.list_events(
            action=action or None, device_id=device_id, cursor=cursor, limit=PAGE_SIZE
        )
    except DomainError:
        page = await audit.list_events(
            action=action or None, device_id=device_id, cursor=None, limit=PAGE_SIZE
        )
    actors = {e.actor_id for e in page.items if e.actor_type == "user" and e.actor_id}
    filters = {"action": action, "deviceId": device_id or ""}
    next_url = (
        "/admin/audit?" + urlencode({**filters, "cursor": page.next_cursor})
        if page.next_cursor
        else None
    )
    return render(
        request,
        "audit.html",
        {
            "events": [audit_view(e).wire() for e in page.items],
            "emails": await accounts.emails_by_id(actors),
            "filters": filters,
            "actions": [action.value for action in ACTIONS],
            "next_url": next_url,
            "first_page": cursor is None,
        },
    )


routes = [Route("/audit", audit_page, methods=["GET"])]
