"""The Webhooks page: endpoints that receive the fleet's events, and each one's delivery log."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from uuid import UUID

from pydantic import Field, ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.edge.access import require_admin, require_reader
from app.edge.presenters import webhook_delivery_view, webhook_view
from app.edge.problems import status_for
from app.edge.responses import NO_STORE
from app.edge.runtime import request_ip, runtime
from app.errors import DomainError, NotFound
from app.models import EventType
from app.services import webhooks
from app.web.forms import ConsoleForm
from app.web.rendering import render

ALL_EVENTS = webhooks.ALL_EVENTS
# The newest deliveries shown on an endpoint's log; older ones stay in the database.
DELIVERY_LOG_SIZE = 50
# An open delivery log re-reads itself this often, so retries and results show up.
LIVE_REFRESH_SECONDS = 3
# Fired by Send test event, so an open delivery log shows the new delivery at once.
DELIVERIES_CHANGED = "webhook-deliveries-changed"
# What each event tells a receiver, in the order the form lists them; `webhook.test` is
# sent only by Send test event, to the one endpoint, so nobody subscribes to it.
EVENT_DESCRIPTIONS: dict[EventType, str] = {
    EventType.DEVICE_REGISTERED: "a scanner was paired",
    EventType.PAIRING_PENDING_APPROVAL: "a scanner typed a code and waits for approval",
    EventType.DEVICE_ONLINE: "a device came online",
    EventType.DEVICE_OFFLINE: "a device went offline",
    EventType.DEVICE_DEREGISTERED: "a device was deregistered",
    EventType.DEVICE_TOKEN_REVOKED: "a device credential was revoked",
    EventType.DEVICE_TOKEN_REUSE_DETECTED: "a rotated-out secret was presented again",
    EventType.DEVICE_TOKEN_EXPIRING: "a device credential expires soon",
    EventType.DEVICE_CLONE_SUSPECTED: "one credential is used by two installations",
    EventType.APP_DEVICE_CONNECTED: "an admin connected the mobile app",
    EventType.APP_DEVICE_REVOKED: "a mobile app connection was revoked",
}
FORM_HELP = "Enter an http(s) URL and choose at least one event, or All events."


class EndpointForm(ConsoleForm):
    url: str = Field(min_length=1, max_length=2048)
    events: list[str] = Field(min_length=1)
    description: str = Field(default="", max_length=200)


@dataclass(frozen=True)
class Entered:
    """What the admin typed, shown again when the form is refused."""

    url: str = ""
    events: tuple[str, ...] = (ALL_EVENTS,)
    description: str = ""

    @classmethod
    def of(cls, form: FormData) -> Entered:
        return cls(
            url=str(form.get("url", ""))[:2048],
            events=tuple(str(e)[:64] for e in form.getlist("events")),
            description=str(form.get("description", ""))[:200],
        )


async def _list_context(*, can_write: bool) -> dict[str, object]:
    return {
        "endpoints": [webhook_view(e).wire() for e in await webhooks.list_endpoints()],
        "can_write": can_write,
    }


def _form_context(entered: Entered, message: str | None = None) -> dict[str, object]:
    return {"entered": entered, "message": message, "event_descriptions": EVENT_DESCRIPTIONS}


async def page(request: Request) -> Response:
    principal = await require_reader(request)
    context = await _list_context(can_write=principal.is_admin)
    return render(request, "webhooks.html", {**context, **_form_context(Entered())})


def _refused(request: Request, entered: Entered, message: str) -> Response:
    return render(
        request,
        "partials/webhook_add.html",
        _form_context(entered, message),
        status=400,
        headers=NO_STORE,
    )


async def add(request: Request) -> Response:
    principal = await require_admin(request)
    form = await request.form()
    entered = Entered.of(form)
    try:
        valid = EndpointForm.model_validate(
            {"url": entered.url, "events": list(entered.events), "description": entered.description}
        )
    except ValidationError:
        return _refused(request, entered, FORM_HELP)
    try:
        created = await webhooks.create_endpoint(
            url=valid.url,
            events=valid.events,
            description=valid.description,
            actor=principal.user,
            ip=request_ip(request),
            settings=runtime(request).settings,
        )
    except DomainError as exc:
        return _refused(request, entered, exc.message)
    return render(
        request,
        "partials/webhook_add.html",
        {
            **_form_context(Entered()),
            **await _list_context(can_write=True),
            "created": webhook_view(created.endpoint).wire(),
            "secret": created.secret,
        },
        # The signing secret is in this answer and nowhere else, ever again.
        headers=NO_STORE,
    )


async def deliveries(request: Request) -> Response:
    principal = await require_reader(request)
    endpoint_id: UUID = request.path_params["endpoint_id"]
    endpoint = await webhooks.get_endpoint(endpoint_id)
    rows = await webhooks.list_deliveries(endpoint_id, limit=DELIVERY_LOG_SIZE)
    return render(
        request,
        "webhook_deliveries.html",
        {
            "endpoint": webhook_view(endpoint).wire(),
            "deliveries": [webhook_delivery_view(d).wire() for d in rows],
            "log_size": DELIVERY_LOG_SIZE,
            "refresh_seconds": LIVE_REFRESH_SECONDS,
            "can_write": principal.is_admin,
        },
    )


async def send_test(request: Request) -> Response:
    principal = await require_admin(request)
    endpoint_id: UUID = request.path_params["endpoint_id"]
    try:
        await webhooks.send_test(
            endpoint_id=endpoint_id, actor=principal.user, ip=request_ip(request)
        )
    except DomainError as exc:
        return render(
            request,
            "partials/webhook_test_sent.html",
            {"message": exc.message},
            status=status_for(exc),
        )
    return render(
        request,
        "partials/webhook_test_sent.html",
        {"endpoint_id": str(endpoint_id), "message": None},
        headers={"HX-Trigger": DELIVERIES_CHANGED},
    )


async def remove(request: Request) -> Response:
    principal = await require_admin(request)
    # Removed meanwhile (another tab, the API): the list shows it gone all the same.
    with contextlib.suppress(NotFound):
        await webhooks.delete_endpoint(
            endpoint_id=request.path_params["endpoint_id"],
            actor=principal.user,
            ip=request_ip(request),
        )
    return Response(status_code=204, headers={"HX-Redirect": "/admin/webhooks"})


routes = [
    Route("/webhooks", page, methods=["GET"]),
    Route("/webhooks", add, methods=["POST"]),
    Route("/webhooks/{endpoint_id:uuid}", deliveries, methods=["GET"]),
    Route("/webhooks/{endpoint_id:uuid}/test", send_test, methods=["POST"]),
    Route("/webhooks/{endpoint_id:uuid}/remove", remove, methods=["POST"]),
]
