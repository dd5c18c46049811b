"""`POST /api/devices/heartbeat` (DESIGN §5): what it takes, what it refuses, how often."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from simulator.protocol import HEARTBEAT, Credentials, DeviceApi
from tests.factories import PairScanner, SignedInClient
from tests.scanner import bearer, heartbeat
from tests.wire import assert_problem

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(None, id="no-body"),
        pytest.param({}, id="empty-object"),
        pytest.param({"batteryLevel": 0}, id="battery-empty"),
        pytest.param({"batteryLevel": 1}, id="battery-full"),
        pytest.param({"appVersion": "3.0.0"}, id="app-version-only"),
    ],
)
async def test_heartbeat_fields_are_optional(
    device_client: httpx.AsyncClient, access_token: str, body: dict[str, Any] | None
) -> None:
    response = await device_client.post(HEARTBEAT, json=body, headers=bearer(access_token))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"appVersion": "x" * 65}, "appVersion", id="app-version-too-long"),
        pytest.param({"osVersion": 17}, "osVersion", id="os-version-not-text"),
        pytest.param({"batteryLevel": 1.5}, "batteryLevel", id="battery-above-one"),
        pytest.param({"batteryLevel": -0.01}, "batteryLevel", id="battery-negative"),
        pytest.param({"batteryLevel": "full"}, "batteryLevel", id="battery-not-a-number"),
        pytest.param({"deviceId": str(uuid.uuid4())}, "deviceId", id="unknown-field"),
        pytest.param(["appVersion"], "body", id="not-an-object"),
    ],
)
async def test_heartbeat_refuses_bad_fields(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: Credentials,
    access_token: str,
    body: Any,
    field: str,
) -> None:
    response = await device_client.post(HEARTBEAT, json=body, headers=bearer(access_token))

    assert_problem(response, 400, "validation_error")
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert (await admin.api.device(device.device_id))["online"] is False


async def _chunked(data: bytes) -> AsyncIterator[bytes]:
    """A body streamed without Content-Length, as some HTTP stacks send it."""
    for start in range(0, len(data), 1024):
        yield data[start : start + 1024]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param({"appVersion": "2.6.0"}, 200, None, id="valid"),
        pytest.param(
            {"appVersion": "2.6.0", "isAdmin": True}, 400, "validation_error", id="unknown-field"
        ),
        pytest.param({"appVersion": "x" * 65}, 400, "validation_error", id="app-version-too-long"),
        pytest.param({"pad": "x" * 16 * 1024}, 413, "payload_too_large", id="over-16-kib"),
    ],
)
async def test_heartbeat_judges_a_chunked_body_like_any_other(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: Credentials,
    access_token: str,
    body: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    headers = {**bearer(access_token), "Content-Type": "application/json"}

    response = await device_client.post(
        HEARTBEAT, content=_chunked(json.dumps(body).encode()), headers=headers
    )

    assert "content-length" not in response.request.headers
    if code is None:
        assert response.status_code == status, response.text
        assert (await admin.api.device(device.device_id))["appVersion"] == "2.6.0"
    else:
        assert_problem(response, status, code)
        assert (await admin.api.device(device.device_id))["online"] is False


BUDGETS = pytest.mark.parametrize(
    ("settings", "budget"),
    [
        pytest.param({}, 12, id="default-12-per-minute"),
        pytest.param({"heartbeats_per_device": "3/minute"}, 3, id="configured-3-per-minute"),
    ],
    indirect=["settings"],
)


@pytest.fixture
async def budget_spent(device_client: httpx.AsyncClient, access_token: str, budget: int) -> str:
    """The device has sent as many heartbeats this minute as its budget allows."""
    for _ in range(budget):
        assert (await heartbeat(device_client, access_token)).status_code == 200
    return access_token


@BUDGETS
async def test_heartbeats_beyond_the_devices_budget_are_rate_limited(
    device_client: httpx.AsyncClient, budget_spent: str
) -> None:
    limited = await heartbeat(device_client, budget_spent)

    assert_problem(limited, 429, "rate_limited")
    assert 0 < int(limited.headers["retry-after"]) <= 60


@BUDGETS
async def test_the_heartbeat_budget_belongs_to_the_device_not_to_one_access_token(
    device_client: httpx.AsyncClient, device_api: DeviceApi, device: Credentials, budget_spent: str
) -> None:
    fresh = (await device_api.access_token(device)).token

    assert_problem(await heartbeat(device_client, fresh), 429, "rate_limited")


@BUDGETS
async def test_another_device_keeps_its_own_heartbeat_budget(
    device_client: httpx.AsyncClient, device_api: DeviceApi, pair: PairScanner, budget_spent: str
) -> None:
    other = await pair()

    token = (await device_api.access_token(other)).token
    assert (await heartbeat(device_client, token)).is_success
