"""Signed webhooks: the admin API, the fan-out and delivery jobs against a real receiver on
127.0.0.1, retries under one `webhook-id`, disabling after the schedule, and the URL policy
at creation and at delivery time."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from standardwebhooks import WebhookVerificationError
from starlette.applications import Starlette

from app import clock
from app.edge.runtime import runtime
from app.models import AuditEvent, OutboxEvent, WebhookEndpoint
from app.models.user import Role
from app.services import webhooks
from app.settings import Settings
from simulator.protocol import Credentials
from tests.admin_phone import connect
from tests.factories import SignedInClient, make_user, sign_in
from tests.webhook_receiver import Receiver
from tests.wire import assert_problem

WEBHOOKS = "/api/v1/admin/webhooks"
# Loopback receivers allowed; every retry due at once.
LOCAL = {"webhook_allow_private_networks": True, "webhook_retry_schedule": (0, 0)}
local = pytest.mark.parametrize("settings", [LOCAL], indirect=True)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


async def create(
    admin: SignedInClient, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    response = await admin.client.post(
        WEBHOOKS,
        json={"url": url, "events": events or ["*"], "description": "ops"},
        headers=admin.write_headers(),
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created: dict[str, Any] = response.json()
    return created


async def deliveries(admin: SignedInClient, webhook_id: str) -> list[dict[str, Any]]:
    response = await admin.client.get(f"{WEBHOOKS}/{webhook_id}/deliveries")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def run_jobs(settings: Settings) -> int:
    await webhooks.dispatch(clock.now(), settings)
    return await webhooks.deliver_due(clock.now(), settings)


@local
async def test_endpoint_lifecycle_shows_the_secret_once(
    app: Starlette, admin: SignedInClient, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    created = await create(admin, receiver.url, ["device.registered", "device.registered"])
    secret = created["secret"]

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert created["events"] == ["device.registered"]
    listed = await admin.client.get(WEBHOOKS)
    assert listed.status_code == 200
    assert secret not in listed.text
    [item] = listed.json()["items"]
    assert item == {
        "webhookId": created["webhookId"],
        "url": receiver.url,
        "events": ["device.registered"],
        "description": "ops",
        "createdAtIso": created["createdAtIso"],
        "disabledAtIso": None,
    }
    test = await admin.client.post(
        f"{WEBHOOKS}/{created['webhookId']}/test", headers=admin.write_headers()
    )
    assert test.status_code == 202, test.text
    assert test.json()["type"] == "webhook.test"
    assert test.json()["eventId"].startswith("msg_")
    audit = [(e.action, e.metadata) for e in await AuditEvent.filter(target_type="webhook")]
    assert {a for a, _ in audit} == {"webhook.created", "webhook.test_sent"}
    # The query string may carry a receiver's token: the audit keeps the URL without it.
    assert all(m["url"] == receiver.url.split("?")[0] for _, m in audit)

    operator = await sign_in(client, await make_user(Role.OPERATOR))
    assert (await operator.client.get(WEBHOOKS)).status_code == 200
    assert (await deliveries(operator, created["webhookId"]))[0]["type"] == "webhook.test"
    assert_problem(
        await operator.client.delete(
            f"{WEBHOOKS}/{created['webhookId']}", headers=operator.write_headers()
        ),
        403,
        "forbidden",
    )
    admin = await sign_in(client, admin.user)
    deleted = await admin.client.delete(
        f"{WEBHOOKS}/{created['webhookId']}", headers=admin.write_headers()
    )
    assert deleted.status_code == 204
    assert (await admin.client.get(WEBHOOKS)).json()["items"] == []
    assert_problem(
        await admin.client.get(f"{WEBHOOKS}/{created['webhookId']}/deliveries"), 404, "not_found"
    )
    assert await AuditEvent.filter(action="webhook.deleted").count() == 1
    # Kept sealed at rest, and nowhere in what was recorded or answered since.
    stored = [str(e.metadata) for e in await AuditEvent.all()]
    assert not any(secret in text or secret[6:] in text for text in stored)


@local
async def test_events_arrive_signed_and_retries_keep_the_webhook_id(
    app: Starlette, admin: SignedInClient, receiver: Receiver, pair: Any
) -> None:
    settings = runtime(app).settings
    receiver.fail_first = 2
    created = await create(admin, receiver.url, ["device.registered"])

    device: Credentials = await pair()

    for _ in range(3):
        assert await run_jobs(settings) == 1
    assert await run_jobs(settings) == 0
    first, second, third = await receiver.wait_for(3)
    assert {r.headers["webhook-id"] for r in (first, second, third)} == {third.json()["id"]}
    payload = third.verified(created["secret"])
    assert payload["type"] == "device.registered"
    assert payload["data"]["deviceId"] == device.device_id
    assert payload["timestamp"].endswith("Z")
    assert third.headers["webhook-signature"].startswith("v1,")
    for attempt in (first, second):
        assert attempt.verified(created["secret"]) == payload
    with pytest.raises(WebhookVerificationError):
        third.verified(webhooks.SECRET_PREFIX + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert not any(created["secret"][6:] in r.body.decode() for r in receiver.received)
    [delivery] = await deliveries(admin, created["webhookId"])
    assert delivery["attempts"] == 3
    assert delivery["lastStatusCode"] == 204
    assert delivery["lastError"] is None
    assert delivery["deliveredAtIso"] is not None
    assert delivery["nextAttemptAtIso"] is None
    assert delivery["eventId"] == payload["id"]


@pytest.mark.parametrize("settings", [{**LOCAL, "webhook_retry_schedule": (0,)}], indirect=True)
async def test_an_endpoint_failing_through_the_schedule_is_disabled(
    app: Starlette, admin: SignedInClient, receiver: Receiver
) -> None:
    settings = runtime(app).settings
    receiver.fail_first = 100
    created = await create(admin, receiver.url)
    sent = await admin.client.post(
        f"{WEBHOOKS}/{created['webhookId']}/test", headers=admin.write_headers()
    )
    assert sent.status_code == 202

    assert await run_jobs(settings) == 1
    assert await run_jobs(settings) == 1
    assert await run_jobs(settings) == 0

    assert len(receiver.received) == 2
    [delivery] = await deliveries(admin, created["webhookId"])
    assert delivery["failedAtIso"] is not None
    assert delivery["lastStatusCode"] == 500
    assert delivery["lastError"] == "The receiver answered 500."
    [listed] = (await admin.client.get(WEBHOOKS)).json()["items"]
    assert listed["disabledAtIso"] is not None
    [disabled] = await AuditEvent.filter(action="webhook.disabled")
    assert disabled.actor_type == "system"
    assert disabled.metadata["attempts"] == 2
    assert_problem(
        await admin.client.post(
            f"{WEBHOOKS}/{created['webhookId']}/test", headers=admin.write_headers()
        ),
        409,
        "conflict",
    )


@local
async def test_a_test_event_goes_to_its_endpoint_alone_and_once_per_attempt(
    app: Starlette, admin: SignedInClient, receiver: Receiver
) -> None:
    settings = runtime(app).settings
    chosen = await create(admin, receiver.url)
    other = await create(admin, receiver.url + "&other=1")
    await admin.client.post(f"{WEBHOOKS}/{chosen['webhookId']}/test", headers=admin.write_headers())

    # Two workers on the same tick: the attempt is claimed by one of them.
    counts = await asyncio.gather(
        webhooks.deliver_due(clock.now(), settings), webhooks.deliver_due(clock.now(), settings)
    )

    assert sorted(counts) == [0, 1]
    [received] = receiver.received
    assert received.verified(chosen["secret"])["data"] == {
        "webhookId": chosen["webhookId"],
        "atIso": received.json()["data"]["atIso"],
    }
    assert await webhooks.dispatch(clock.now(), settings) == 0
    assert await deliveries(admin, other["webhookId"]) == []


@local
async def test_each_change_writes_its_event_with_the_change(
    app: Starlette, admin: SignedInClient, device_client: httpx.AsyncClient, pair: Any
) -> None:
    device: Credentials = await pair()
    detail = await admin.api.device(device.device_id)
    await admin.api.revoke_token(device.device_id, detail["tokens"][0]["tokenId"])
    await admin.api.deregister(device.device_id)
    phone = await connect(admin, device_client)
    revoked = await admin.client.delete(
        f"/api/v1/admin/app/devices/{phone.device_id}", headers=admin.write_headers()
    )
    assert revoked.status_code == 204

    emitted = [(e.type, e.data) for e in await OutboxEvent.all()]

    assert [t for t, _ in emitted] == [
        "device.registered",
        "device.token.revoked",
        "device.deregistered",
        "app.device.connected",
        "app.device.revoked",
    ]
    assert all(data["deviceId"] in (device.device_id, phone.device_id) for _, data in emitted)
    assert all(data["atIso"].endswith("Z") for _, data in emitted)


ALWAYS_REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://[fd00:ec2::254]/hook",
    "http://[::ffff:169.254.169.254]/hook",
]
PRIVATE = ["http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://localhost:9/hook"]
MALFORMED = ["ftp://93.184.216.34/hook", "http:///hook", "https://user:pw@93.184.216.34/"]


async def refused(admin: SignedInClient, urls: list[str]) -> list[str]:
    """The refusal of each URL, in words."""
    details = []
    for url in urls:
        response = await admin.client.post(
            WEBHOOKS, json={"url": url, "events": ["*"]}, headers=admin.write_headers()
        )
        assert_problem(response, 400, "validation_error")
        details.append(response.json()["detail"])
    assert await WebhookEndpoint.all().count() == 0
    return details


@local
async def test_metadata_and_link_local_urls_are_refused_even_with_private_networks_allowed(
    app: Starlette, admin: SignedInClient
) -> None:
    details = await refused(admin, ALWAYS_REFUSED + MALFORMED)

    assert all("link-local or cloud metadata" in d for d in details[: len(ALWAYS_REFUSED)])


async def test_private_urls_are_refused_by_default(app: Starlette, admin: SignedInClient) -> None:
    details = await refused(admin, PRIVATE)

    assert all("loopback or private address" in d for d in details)


async def test_unknown_event_types_are_refused_and_a_public_address_is_taken(
    app: Starlette, admin: SignedInClient
) -> None:
    unknown = await admin.client.post(
        WEBHOOKS,
        json={"url": "https://93.184.216.34/hook", "events": ["device.exploded"]},
        headers=admin.write_headers(),
    )
    assert_problem(unknown, 400, "validation_error")
    assert "device.exploded" in unknown.text

    created = await create(admin, "https://93.184.216.34/hook", ["*", "device.online"])
    assert created["events"] == ["*"]


@local
async def test_an_address_refused_at_delivery_time_is_a_failed_attempt(
    app: Starlette, admin: SignedInClient, receiver: Receiver
) -> None:
    created = await create(admin, receiver.url)
    await admin.client.post(
        f"{WEBHOOKS}/{created['webhookId']}/test", headers=admin.write_headers()
    )
    stricter = runtime(app).settings.model_copy(update={"webhook_allow_private_networks": False})

    assert await webhooks.deliver_due(clock.now(), stricter) == 1

    assert receiver.received == []
    [delivery] = await deliveries(admin, created["webhookId"])
    assert delivery["attempts"] == 1
    assert delivery["lastStatusCode"] is None
    assert "127.0.0.1, a loopback or private address" in delivery["lastError"]
    assert delivery["nextAttemptAtIso"] is not None
