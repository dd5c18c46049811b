"""The audit trail a scanner's life leaves (DESIGN §3, §4): every event, never a secret."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from app import clock
from app.models import AuditEvent
from app.settings import Settings
from simulator.protocol import PUSH_TOKEN as PUSH
from simulator.protocol import TOKEN, Credentials, DeviceApi
from tests.factories import SignedInClient
from tests.scanner import PUSH_TOKEN, bearer, heartbeat

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")


async def test_audit_log_never_holds_a_secret(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device_api: DeviceApi,
    device: Credentials,
    access_token: str,
    settings: Settings,
) -> None:
    first_access = access_token
    await heartbeat(device_client, first_access)
    new_push_token = "0f1e2d3c" * 8
    pushed = await device_client.put(
        PUSH,
        json={"pushToken": new_push_token, "apnsEnvironment": "sandbox"},
        headers=bearer(first_access),
    )
    assert pushed.status_code == 204
    rotated = await device_api.rotate(device)
    second_access = (await device_api.access_token(rotated)).token
    await device_client.post(TOKEN, json=device.wire())  # a replay in the race window
    clock.advance(timedelta(seconds=settings.rotation_race_window_seconds))
    await device_client.post(TOKEN, json=device.wire())  # a replay: reuse detected
    await device_client.post(TOKEN, json={**rotated.wire(), "deviceSecret": "pxs_guess"})

    secrets_seen = [
        first_access,
        second_access,
        PUSH_TOKEN,
        new_push_token,
        *(
            part
            for pair in (device, rotated)
            for part in (
                pair.device_token,
                pair.device_secret,
                pair.device_token.split("_", 2)[2],
                pair.device_secret.removeprefix("pxs_"),
            )
        ),
    ]
    events = await AuditEvent.all()
    assert {e.action for e in events} >= {
        "device.registered",
        "device.token.issued",
        "device.push_token.updated",
        "device.token.rotated",
        "device.token.replayed_in_race_window",
        "device.token.reuse_detected",
    }
    stored = json.dumps([e.metadata for e in events])
    listed = (await admin.client.get("/api/v1/admin/audit", params={"limit": 200})).text
    for secret in secrets_seen:
        assert secret not in stored
        assert secret not in listed
