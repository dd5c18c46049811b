"""`PUT /api/devices/push-token` (DESIGN §5): the device's APNs token, shown by its last 8."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.models import AuditEvent
from simulator.protocol import PUSH_TOKEN as PUSH
from simulator.protocol import Credentials
from tests.factories import SignedInClient
from tests.scanner import PUSH_TOKEN, bearer
from tests.wire import assert_problem

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

NEW_PUSH_TOKEN = "F0E1D2C3" * 8


@pytest.fixture
async def uploaded(device_client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await device_client.put(
        PUSH,
        json={"pushToken": NEW_PUSH_TOKEN, "apnsEnvironment": "sandbox"},
        headers=bearer(access_token),
    )


async def test_push_token_update_shows_its_last_8_and_the_environment(
    admin: SignedInClient, device: Credentials, uploaded: httpx.Response
) -> None:
    assert uploaded.status_code == 204, uploaded.text
    detail = await admin.api.device(device.device_id)
    assert detail["pushTokenLast8"] == "f0e1d2c3"
    assert detail["apnsEnvironment"] == "sandbox"


async def test_push_token_update_is_audited_without_the_token(
    device: Credentials, uploaded: httpx.Response
) -> None:
    event = await AuditEvent.get(action="device.push_token.updated")

    assert (event.actor_type, event.actor_id) == ("device", device.device_id)
    assert event.target_id == device.device_id
    assert event.metadata["pushTokenLast8"] == "f0e1d2c3"
    assert NEW_PUSH_TOKEN.lower() not in json.dumps(event.metadata)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(
            {"pushToken": "not-hex!", "apnsEnvironment": "sandbox"}, "pushToken", id="not-hex"
        ),
        pytest.param({"pushToken": "", "apnsEnvironment": "sandbox"}, "pushToken", id="empty"),
        pytest.param(
            {"pushToken": "a" * 201, "apnsEnvironment": "sandbox"}, "pushToken", id="too-long"
        ),
        pytest.param({"apnsEnvironment": "sandbox"}, "pushToken", id="missing"),
        pytest.param(
            {"pushToken": "ab" * 32, "apnsEnvironment": "staging"},
            "apnsEnvironment",
            id="unknown-environment",
        ),
        pytest.param(
            {"pushToken": "ab" * 32, "apnsEnvironment": "sandbox", "label": "x"},
            "label",
            id="unknown-field",
        ),
    ],
)
async def test_push_token_refuses_bad_values(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: Credentials,
    access_token: str,
    body: dict[str, Any],
    field: str,
) -> None:
    response = await device_client.put(PUSH, json=body, headers=bearer(access_token))

    assert_problem(response, 400, "validation_error")
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert (await admin.api.device(device.device_id))["pushTokenLast8"] == PUSH_TOKEN[-8:]
    assert await AuditEvent.filter(action="device.push_token.updated").count() == 0
