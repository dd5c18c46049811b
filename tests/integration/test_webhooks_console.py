"""The console's Webhooks page: endpoints listed to every reader, added, tested and removed
by admins only, the signing secret shown once, and each endpoint's delivery log."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from app.models import AuditEvent, Role, WebhookDelivery, WebhookEndpoint
from tests.factories import SignedInClient, make_user, sign_in

PAGE = "/admin/webhooks"
# A literal public address: the URL policy accepts it without a lookup, and nothing is sent
# (the tests' app runs no scheduler).
RECEIVER = "https://93.184.215.14/hooks/polaris"
SECRET = re.compile(r'data-testid="webhook-secret">(whsec_[A-Za-z0-9+/=]+)<')
WRITE_CONTROLS = ("add-endpoint-form", "send-test", "remove-endpoint", "Add endpoint")


def htmx(admin: SignedInClient) -> dict[str, str]:
    return {**admin.write_headers(), "HX-Request": "true"}


async def add(
    admin: SignedInClient, url: str = RECEIVER, events: tuple[str, ...] = ("*",), **more: str
) -> httpx.Response:
    form = {"url": url, "events": list(events), **more}
    return await admin.client.post(PAGE, data=form, headers=htmx(admin))


@pytest.fixture
async def operator(app: Starlette) -> AsyncIterator[SignedInClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield await sign_in(client, await make_user(Role.OPERATOR))


async def test_the_page_explains_webhooks_while_there_are_none(admin: SignedInClient) -> None:
    page = await admin.client.get(PAGE)

    assert page.status_code == 200
    assert 'data-testid="empty-state"' in page.text
    assert "No webhook endpoints yet" in page.text
    assert "signed JSON POST" in page.text
    assert 'href="/admin/webhooks" aria-current="page"' in page.text
    assert 'data-testid="add-endpoint-form"' in page.text


async def test_adding_an_endpoint_shows_its_secret_once_and_never_caches_it(
    admin: SignedInClient,
) -> None:
    answer = await add(admin, events=("device.offline", "device.token.revoked"), description="Ops")

    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    found = SECRET.search(answer.text)
    assert found is not None, answer.text
    secret = found.group(1)
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert "shown this once and never again" in answer.text
    assert 'data-copy="webhook-secret"' in answer.text
    # The list is brought up to date in the same answer.
    assert 'id="webhook-endpoints" class="webhook-endpoints" hx-swap-oob="true"' in answer.text
    endpoint = await WebhookEndpoint.get()
    assert (endpoint.url, endpoint.events, endpoint.description) == (
        RECEIVER,
        ["device.offline", "device.token.revoked"],
        "Ops",
    )
    assert await AuditEvent.filter(action="webhook.created").count() == 1

    listed = await admin.client.get(PAGE)
    log = await admin.client.get(f"{PAGE}/{endpoint.id}")
    for later in (listed, log):
        assert later.status_code == 200
        assert secret not in later.text
        assert "whsec_" not in later.text
    assert RECEIVER in listed.text
    assert "device.token.revoked" in listed.text
    assert 'data-testid="empty-state"' not in listed.text


@pytest.mark.parametrize(
    ("url", "events", "says"),
    [
        ("http://169.254.169.254/latest/meta-data", ("*",), "link-local or cloud metadata"),
        ("http://127.0.0.1:8080/hook", ("*",), "WEBHOOK_ALLOW_PRIVATE_NETWORKS is off"),
        ("ftp://93.184.215.14/hook", ("*",), "must start with https://"),
        (RECEIVER, (), "choose at least one event"),
        (RECEIVER, ("device.exploded",), "Unknown event type: device.exploded"),
        (RECEIVER + "\x00", ("*",), "Enter an http(s) URL"),
    ],
    ids=["metadata", "loopback", "scheme", "no-events", "unknown-event", "nul"],
)
async def test_a_refused_endpoint_keeps_the_form_and_says_why(
    admin: SignedInClient, url: str, events: tuple[str, ...], says: str
) -> None:
    refused = await add(admin, url=url, events=events, description="Kept as typed")

    assert refused.status_code == 400
    assert says in refused.text
    assert 'value="Kept as typed"' in refused.text
    assert "whsec_" not in refused.text
    assert await WebhookEndpoint.all().count() == 0


async def test_send_test_event_queues_a_delivery_that_the_log_shows(
    admin: SignedInClient,
) -> None:
    await add(admin)
    endpoint = await WebhookEndpoint.get()
    empty_log = await admin.client.get(f"{PAGE}/{endpoint.id}")
    assert 'data-testid="no-deliveries"' in empty_log.text

    sent = await admin.client.post(f"{PAGE}/{endpoint.id}/test", headers=htmx(admin))

    assert sent.status_code == 200
    assert 'data-testid="test-sent"' in sent.text
    assert sent.headers["hx-trigger"] == "webhook-deliveries-changed"
    delivery = await WebhookDelivery.get().prefetch_related("event")
    log = await admin.client.get(f"{PAGE}/{endpoint.id}")
    row = re.search(r'<tr data-event-id="(msg_[0-9a-f]{32})">(.*?)</tr>', log.text, re.S)
    assert row is not None, log.text
    assert row.group(1) == f"msg_{delivery.event.id.hex}"
    assert "webhook.test" in row.group(2)
    assert "Pending" in row.group(2)


async def test_a_disabled_endpoint_is_marked_and_cannot_be_tested(admin: SignedInClient) -> None:
    await add(admin)
    endpoint = await WebhookEndpoint.get()
    endpoint.disabled_at = endpoint.created_at
    await endpoint.save(update_fields=["disabled_at"])

    listed = await admin.client.get(PAGE)
    refused = await admin.client.post(f"{PAGE}/{endpoint.id}/test", headers=htmx(admin))

    assert 'data-testid="disabled"' in listed.text
    assert 'data-testid="send-test"' not in listed.text
    assert refused.status_code == 409
    assert "disabled" in refused.text
    assert await WebhookDelivery.all().count() == 0


async def test_remove_deletes_the_endpoint_and_its_log(admin: SignedInClient) -> None:
    await add(admin)
    endpoint = await WebhookEndpoint.get()
    assert "hx-confirm=" in (await admin.client.get(PAGE)).text

    removed = await admin.client.post(f"{PAGE}/{endpoint.id}/remove", headers=htmx(admin))

    assert removed.status_code == 204
    assert removed.headers["hx-redirect"] == PAGE
    assert 'data-testid="empty-state"' in (await admin.client.get(PAGE)).text
    assert (await admin.client.get(f"{PAGE}/{endpoint.id}")).status_code == 404
    assert await AuditEvent.filter(action="webhook.deleted").count() == 1
    # Removed meanwhile in another tab: the page goes back to the list all the same.
    again = await admin.client.post(f"{PAGE}/{endpoint.id}/remove", headers=htmx(admin))
    assert (again.status_code, again.headers["hx-redirect"]) == (204, PAGE)
    assert await AuditEvent.filter(action="webhook.deleted").count() == 1


async def test_an_operator_reads_everything_but_is_shown_and_allowed_no_writes(
    admin: SignedInClient, operator: SignedInClient
) -> None:
    await add(admin, description="Ticketing")
    endpoint = await WebhookEndpoint.get()
    await admin.client.post(f"{PAGE}/{endpoint.id}/test", headers=htmx(admin))

    listed = await operator.client.get(PAGE)
    log = await operator.client.get(f"{PAGE}/{endpoint.id}")

    assert RECEIVER in listed.text
    assert "Ticketing" in listed.text
    assert "webhook.test" in log.text
    for page in (listed, log):
        assert page.status_code == 200
        assert [c for c in WRITE_CONTROLS if c in page.text] == []
    writes = [
        await add(operator),
        await operator.client.post(f"{PAGE}/{endpoint.id}/test", headers=htmx(operator)),
        await operator.client.post(f"{PAGE}/{endpoint.id}/remove", headers=htmx(operator)),
    ]
    assert [w.status_code for w in writes] == [403, 403, 403]
    assert await WebhookEndpoint.all().count() == 1
    assert await WebhookDelivery.all().count() == 1


async def test_an_operator_is_told_who_may_add_endpoints(operator: SignedInClient) -> None:
    page = await operator.client.get(PAGE)

    assert "Only admins can add webhook endpoints." in page.text


async def test_every_write_needs_the_csrf_header(admin: SignedInClient) -> None:
    await add(admin)
    endpoint = await WebhookEndpoint.get()
    form = {"url": "https://93.184.215.15/other", "events": "*"}

    refused = [
        await admin.client.post(PAGE, data=form),
        await admin.client.post(f"{PAGE}/{endpoint.id}/test"),
        await admin.client.post(f"{PAGE}/{endpoint.id}/remove"),
    ]

    assert [r.status_code for r in refused] == [403, 403, 403]
    assert await WebhookEndpoint.all().count() == 1
    assert await WebhookDelivery.all().count() == 0
