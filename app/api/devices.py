"""Admin API for the fleet: list, inspect, deregister, revoke a credential."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import clock
from app.api.bodies import parse_query
from app.api.idempotency import idempotent
from app.api.responses import DeviceDetailResponse, DeviceListResponse
from app.api.schemas import DeviceListQuery
from app.edge.access import require_admin, require_reader
from app.edge.presenters import (
    audit_view,
    device_view,
    device_with_tokens_view,
    presence_change_view,
    token_view,
)
from app.edge.responses import view_response
from app.edge.runtime import request_ip, runtime
from app.services import audit, devices, presence


async def list_devices(request: Request) -> Response:
    await require_reader(request)
    state = runtime(request)
    query = parse_query(request, DeviceListQuery)
    page = await devices.list_devices(
        devices.FleetFilter(
            kind=query.kind,
            platform=query.platform,
            online=query.online,
            q=query.q,
            include_deregistered=query.include_deregistered,
            expiring_soon=query.expiring_soon,
            clone_suspected=query.clone_suspected,
        ),
        cursor=query.cursor,
        limit=query.limit,
        settings=state.settings,
        presence=state.presence,
    )
    now = clock.now()
    return view_response(
        DeviceListResponse(
            items=[device_view(d, now=now, settings=state.settings) for d in page.items],
            next_cursor=page.next_cursor,
        )
    )


async def show(request: Request) -> Response:
    await require_reader(request)
    state = runtime(request)
    device = await devices.get_device(request.path_params["device_id"])
    await devices.with_presence([device], state.presence)
    view = device_with_tokens_view(device, now=clock.now(), settings=state.settings)
    events = await audit.for_device(str(device.id))
    changes = await presence.recent_changes(str(device.id))
    return view_response(
        DeviceDetailResponse(
            **dict(view),
            audit=[audit_view(e) for e in events],
            presence_changes=[presence_change_view(c) for c in changes],
        )
    )


@idempotent("deregister")
async def deregister(request: Request) -> Response:
    principal = await require_admin(request)
    device_id: UUID = request.path_params["device_id"]
    await devices.deregister(
        device_id=device_id,
        actor=principal.user,
        ip=request_ip(request),
        presence=runtime(request).presence,
    )
    return Response(status_code=204)


async def revoke_token(request: Request) -> Response:
    principal = await require_admin(request)
    token = await devices.revoke_token(
        device_id=request.path_params["device_id"],
        token_id=request.path_params["token_id"],
        actor=principal.user,
        ip=request_ip(request),
        presence=runtime(request).presence,
    )
    return view_response(token_view(token))


routes = [
    Route("/devices", list_devices, methods=["GET"]),
    Route("/devices/{device_id:uuid}", show, methods=["GET"]),
    Route("/devices/{device_id:uuid}", deregister, methods=["DELETE"]),
    Route(
        "/devices/{device_id:uuid}/tokens/{token_id:uuid}/revoke", revoke_token, methods=["POST"]
    ),
]
