"""Admin API for webhook endpoints: create (the secret shown once), list, delete, send a
test event, read the deliveries."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.bodies import parse_body
from app.api.responses import WebhookDeliveryListResponse, WebhookListResponse
from app.api.schemas import CreateWebhookRequest
from app.edge.access import require_admin, require_reader
from app.edge.presenters import webhook_delivery_view, webhook_view
from app.edge.responses import NO_STORE, view_response
from app.edge.runtime import request_ip, runtime
from app.edge.views import CreatedWebhookView
from app.services import webhooks


async def create(request: Request) -> Response:
    principal = await require_admin(request)
    body = await parse_body(request, CreateWebhookRequest)
    created = await webhooks.create_endpoint(
        url=body.url,
        events=body.events,
        description=body.description,
        actor=principal.user,
        ip=request_ip(request),
        settings=runtime(request).settings,
    )
    endpoint = created.endpoint
    view = CreatedWebhookView(
        webhook_id=endpoint.id,
        url=endpoint.url,
        events=endpoint.events,
        description=endpoint.description,
        secret=created.secret,
        created_at_iso=endpoint.created_at,
    )
    return view_response(view, status=201, headers=NO_STORE)


async def list_webhooks(request: Request) -> Response:
    await require_reader(request)
    endpoints = await webhooks.list_endpoints()
    return view_response(WebhookListResponse(items=[webhook_view(e) for e in endpoints]))


async def delete(request: Request) -> Response:
    principal = await require_admin(request)
    await webhooks.delete_endpoint(
        endpoint_id=request.path_params["webhook_id"],
        actor=principal.user,
        ip=request_ip(request),
    )
    return Response(status_code=204)


async def send_test(request: Request) -> Response:
    principal = await require_admin(request)
    delivery = await webhooks.send_test(
        endpoint_id=request.path_params["webhook_id"],
        actor=principal.user,
        ip=request_ip(request),
    )
    return view_response(webhook_delivery_view(delivery), status=202)


async def list_deliveries(request: Request) -> Response:
    await require_reader(request)
    deliveries = await webhooks.list_deliveries(request.path_params["webhook_id"])
    return view_response(
        WebhookDeliveryListResponse(items=[webhook_delivery_view(d) for d in deliveries])
    )


routes = [
    Route("/webhooks", create, methods=["POST"]),
    Route("/webhooks", list_webhooks, methods=["GET"]),
    Route("/webhooks/{webhook_id:uuid}", delete, methods=["DELETE"]),
    Route("/webhooks/{webhook_id:uuid}/test", send_test, methods=["POST"]),
    Route("/webhooks/{webhook_id:uuid}/deliveries", list_deliveries, methods=["GET"]),
]
