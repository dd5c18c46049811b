"""Console pages for the fleet: the device list and a device's detail."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from app import clock
from app.edge.access import require_admin, require_reader
from app.edge.presenters import (
    audit_view,
    device_view,
    device_with_tokens_view,
    presence_change_view,
)
from app.edge.responses import NO_STORE
from app.edge.runtime import request_ip, runtime
from app.errors import DomainError
from app.models import AuditAction, Device, Kind
from app.services import audit, devices, fleet_summary, presence
from app.services.fleet_summary import FleetSummary
from app.services.pagination import Page
from app.settings import Settings
from app.web import relative_time
from app.web.forms import ConsoleForm
from app.web.rendering import render

PAGE_SIZE = 25
# The exact last-seen times only title the relative ones ("just now"): a heartbeat that leaves
# every row reading the same is no reason to replace the open page's list.
_TOOLTIP_ONLY = frozenset({"lastSeenAtIso", "lastSeenExact"})
PLATFORMS = {"ios": "iOS", "ipados": "iPadOS", "macos": "macOS", "android": "Android"}
# `status=` of the list, each matching one count of `fleet_summary`.
STATUSES = {
    "online": "Online",
    "offline": "Offline",
    "expiring": "Expiring soon",
    "clones": "Suspected clones",
}


class FleetQuery(ConsoleForm):
    q: str = ""
    platform: str = ""
    status: str = ""
    cursor: str = ""
    # The version of the live region the open page shows (see `_shown_version`).
    shown: str = ""


async def home(request: Request) -> Response:
    await require_reader(request)
    return RedirectResponse("/admin/devices", status_code=303)


async def fleet_page(request: Request) -> Response:
    principal = await require_reader(request)
    state = runtime(request)
    settings = state.settings
    try:
        query = FleetQuery.model_validate(dict(request.query_params))
    except ValidationError:
        query = FleetQuery()
    status = query.status if query.status in STATUSES else ""
    fleet_filter = devices.FleetFilter(
        # Admin-app connections have their own page (Mobile app).
        kind=Kind.SCANNER,
        q=query.q[:120] or None,
        platform=query.platform if query.platform in PLATFORMS else None,
        online={"online": True, "offline": False}.get(status),
        expiring_soon=status == "expiring",
        clone_suspected=status == "clones",
    )

    async def listed() -> Page[Device]:
        try:
            return await devices.list_devices(
                fleet_filter,
                cursor=query.cursor or None,
                limit=PAGE_SIZE,
                settings=settings,
                presence=state.presence,
            )
        except DomainError:
            # A mangled cursor in a bookmarked URL: start from the first page.
            return await devices.list_devices(
                fleet_filter,
                cursor=None,
                limit=PAGE_SIZE,
                settings=settings,
                presence=state.presence,
            )

    now = clock.now()
    # Neither waits for the other: the page costs the slower of the two.
    page, counts = await asyncio.gather(
        listed(), fleet_summary.summary(now=now, settings=settings, presence=state.presence)
    )
    filters = {"q": query.q, "platform": query.platform, "status": status}
    next_url = (
        "/admin/devices?" + urlencode({**filters, "cursor": page.next_cursor})
        if page.next_cursor
        else None
    )
    live: dict[str, Any] = {
        "devices": [_listed(d, now=now, settings=settings) for d in page.items],
        "counts": _count_cards(counts, status),
        "filters": filters,
        "filtered": any(filters.values()),
        "first_page": not query.cursor,
        "next_url": next_url,
        "can_write": principal.is_admin,
    }
    version = _shown_version(live)
    if query.shown == version and request.headers.get("HX-Request") == "true":
        # The open page's poll, and it already shows all this: nothing to swap, whatever the
        # number of heartbeats, sweeps and flips since its last look.
        return Response(status_code=204)
    return render(
        request,
        "devices.html",
        live
        | {
            "statuses": STATUSES,
            "notice_days": settings.credential_expiry_notice_days,
            "platforms": PLATFORMS,
            "capabilities": settings.supported_capabilities,
            "live_url": "/admin/devices?"
            + urlencode({**filters, "cursor": query.cursor, "shown": version}),
            "refresh_seconds": settings.console_refresh_seconds,
        },
    )


def _shown_version(live: dict[str, Any]) -> str:
    """A digest of what the live region and the counts show: equal digests, equal pages."""
    visible = live | {
        "devices": [
            {k: v for k, v in row.items() if k not in _TOOLTIP_ONLY} for row in live["devices"]
        ],
        "counts": [dataclasses.astuple(card) for card in live["counts"]],
    }
    return hashlib.blake2b(orjson.dumps(visible), digest_size=8).hexdigest()


def _listed(device: Device, *, now: datetime, settings: Settings) -> dict[str, Any]:
    view = device_view(device, now=now, settings=settings).wire()
    seen = device.last_seen_at
    return view | {
        "lastSeenAgo": relative_time.ago(seen, now),
        "lastSeenExact": relative_time.exact(seen) if seen else None,
    }


@dataclass(frozen=True, slots=True)
class CountCard:
    key: str
    label: str
    count: int
    href: str
    current: bool


def _count_cards(counts: FleetSummary, status: str) -> list[CountCard]:
    """Each count links to the list it counts; pending pairings are not devices yet, and the
    audit log shows the typed codes claimed (each approved in its minting admin's dialog)."""

    def card(key: str, label: str, count: int, href: str) -> CountCard:
        return CountCard(key, label, count, href, current=key == (status or "total"))

    return [
        card("total", "Devices", counts.total, "/admin/devices"),
        card("online", "Online", counts.online, "/admin/devices?status=online"),
        card("offline", "Offline", counts.offline, "/admin/devices?status=offline"),
        card(
            "pending",
            "Pending approval",
            counts.pending_approval,
            f"/admin/audit?action={AuditAction.PAIRING_CLAIMED.value}",
        ),
        card("expiring", "Expiring soon", counts.expiring_soon, "/admin/devices?status=expiring"),
        card("clones", "Suspected clones", counts.clone_suspected, "/admin/devices?status=clones"),
    ]


async def device_page(request: Request) -> Response:
    principal = await require_reader(request)
    state = runtime(request)
    device = await devices.get_device(request.path_params["device_id"])
    await devices.with_presence([device], state.presence)
    events = await audit.for_device(str(device.id))
    return render(
        request,
        "device.html",
        {
            "device": device_with_tokens_view(
                device, now=clock.now(), settings=state.settings
            ).wire(),
            "events": [audit_view(e).wire() for e in events],
            "presence_changes": [
                presence_change_view(c).wire()
                for c in await presence.recent_changes(str(device.id))
            ],
            "refresh_seconds": state.settings.console_refresh_seconds,
            "platforms": PLATFORMS,
            "can_write": principal.is_admin,
        },
        headers=NO_STORE,
    )


async def deregister(request: Request) -> Response:
    principal = await require_admin(request)
    device_id: UUID = request.path_params["device_id"]
    await devices.deregister(
        device_id=device_id,
        actor=principal.user,
        ip=request_ip(request),
        presence=runtime(request).presence,
    )
    return Response(status_code=204, headers={"HX-Redirect": f"/admin/devices/{device_id}"})


async def revoke_token(request: Request) -> Response:
    principal = await require_admin(request)
    device_id: UUID = request.path_params["device_id"]
    await devices.revoke_token(
        device_id=device_id,
        token_id=request.path_params["token_id"],
        actor=principal.user,
        ip=request_ip(request),
        presence=runtime(request).presence,
    )
    return Response(status_code=204, headers={"HX-Redirect": f"/admin/devices/{device_id}"})


home_routes = [Route("/", home, methods=["GET"])]
routes = [
    Route("/devices", fleet_page, methods=["GET"]),
    Route("/devices/{device_id:uuid}", device_page, methods=["GET"]),
    Route("/devices/{device_id:uuid}/deregister", deregister, methods=["POST"]),
    Route(
        "/devices/{device_id:uuid}/tokens/{token_id:uuid}/revoke", revoke_token, methods=["POST"]
    ),
]
