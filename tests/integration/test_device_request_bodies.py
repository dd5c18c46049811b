"""What every device call accepts as a body (DESIGN §8): small JSON, nothing else."""

from __future__ import annotations

import json

import httpx
import pytest

from simulator.protocol import HEARTBEAT, ROTATE, TOKEN, Credentials, DeviceApi
from simulator.protocol import PUSH_TOKEN as PUSH
from tests.scanner import bearer
from tests.wire import assert_problem

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

DEVICE_CALLS = [
    pytest.param("POST", TOKEN, False, id="token"),
    pytest.param("POST", ROTATE, False, id="rotate"),
    pytest.param("POST", HEARTBEAT, True, id="heartbeat"),
    pytest.param("PUT", PUSH, True, id="push-token"),
]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        pytest.param(
            b"deviceToken=x",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
            id="form",
        ),
        pytest.param(
            b'{"appVersion": "2.5.0"}',
            "text/plain",
            415,
            "unsupported_media_type",
            id="json-as-text",
        ),
        pytest.param(
            json.dumps({"pad": "x" * 16 * 1024}).encode(),
            "application/json",
            413,
            "payload_too_large",
            id="over-16-kib",
        ),
        pytest.param(
            b"{not json", "application/json", 400, "validation_error", id="malformed-json"
        ),
    ],
)
@pytest.mark.parametrize(("method", "path", "needs_bearer"), DEVICE_CALLS)
async def test_device_calls_take_small_json_bodies_only(
    device_client: httpx.AsyncClient,
    device_api: DeviceApi,
    device: Credentials,
    method: str,
    path: str,
    needs_bearer: bool,
    content: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    headers = {"Content-Type": content_type}
    if needs_bearer:
        headers |= bearer((await device_api.access_token(device)).token)

    response = await device_client.request(method, path, content=content, headers=headers)

    assert_problem(response, status, code)
