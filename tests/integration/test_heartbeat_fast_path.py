"""The heartbeat fast path: the same answers as the route, and everything unusual left to it."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from app.api.heartbeat_fast_path import HeartbeatFastPath
from app.models.user import Role
from app.settings import Settings
from tests.factories import SignedInClient, make_user, sign_in
from tests.pairing_client import PairedDevice, access_token, bearer, pair_device

HEARTBEAT = "/api/devices/heartbeat"
BODY = {"appVersion": "2.5.0", "osVersion": "17.6", "batteryLevel": 0.42}
# Headers that differ between any two responses, whichever layer answers.
PER_RESPONSE = {"x-request-id", "retry-after"}


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return settings.model_copy(update=getattr(request, "param", {}))


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> SignedInClient:
    return await sign_in(client, await make_user(Role.ADMIN))


@pytest.fixture
async def device(admin: SignedInClient, device_client: httpx.AsyncClient) -> PairedDevice:
    return await pair_device(admin.client, device_client, admin.csrf_token)


def stable_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in PER_RESPONSE}


async def test_a_known_tokens_heartbeat_gets_the_routes_answer(
    device_client: httpx.AsyncClient, device: PairedDevice
) -> None:
    token = await access_token(device_client, device)
    # The first use of a token goes through the route, which verifies and remembers it.
    first = await device_client.post(HEARTBEAT, json=BODY, headers=bearer(token))
    request_id = str(uuid.uuid4())
    second = await device_client.post(
        HEARTBEAT, json=BODY, headers={**bearer(token), "X-Request-ID": request_id}
    )

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.content == second.content
    assert stable_headers(first) == stable_headers(second)
    assert "content-security-policy" in second.headers
    assert second.headers["x-request-id"] == request_id


@pytest.mark.parametrize("settings", [{"heartbeats_per_device": "1/minute"}], indirect=True)
async def test_a_rate_limited_heartbeat_is_refused_alike_on_both_paths(
    device_client: httpx.AsyncClient, device: PairedDevice
) -> None:
    token = await access_token(device_client, device)
    assert (await device_client.post(HEARTBEAT, headers=bearer(token))).status_code == 200

    fast = await device_client.post(HEARTBEAT, headers=bearer(token))
    # A token not seen before goes through the route.
    routed = await device_client.post(
        HEARTBEAT, headers=bearer(await access_token(device_client, device))
    )

    for refused in (fast, routed):
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "rate_limited"
        assert 0 < int(refused.headers["retry-after"]) <= 60
    assert stable_headers(fast) == stable_headers(routed)
    assert fast.json() == routed.json()


class Below:
    """The ordinary stack, as seen from the fast path: records what reaches it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(
    app: Starlette, below: Below, headers: dict[str, str], body: bytes, *, chunked: bool = False
) -> int:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if not chunked:
        raw.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": HEARTBEAT,
        "headers": raw,
        "app": app,
        "query_string": b"",
    }
    pieces = [body[:5], body[5:]] if chunked else [body]

    async def receive() -> Message:
        piece = pieces.pop(0)
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await HeartbeatFastPath(below, settings=app.state.settings)(scope, receive, send)
    return statuses[0]


@pytest.fixture
async def known_token(device_client: httpx.AsyncClient, device: PairedDevice) -> str:
    token = await access_token(device_client, device)
    assert (await device_client.post(HEARTBEAT, headers=bearer(token))).status_code == 200
    return token


async def test_the_fast_path_answers_a_known_token_without_the_stack(
    app: Starlette, known_token: str
) -> None:
    below = Below()
    json_body = {"Content-Type": "application/json"}
    assert await call(app, below, {**bearer(known_token), **json_body}, json.dumps(BODY).encode())
    assert await call(app, below, {"Authorization": f"bearer  {known_token} "}, b"") == 200
    assert below.bodies == []


@pytest.mark.parametrize(
    ("headers", "body", "chunked"),
    [
        pytest.param({"Authorization": ""}, b"", False, id="no-token"),
        pytest.param({"Authorization": "Bearer not-a-jwt"}, b"", False, id="unknown-token"),
        pytest.param({"Authorization": "Basic {token}"}, b"", False, id="other-scheme"),
        pytest.param({"Content-Type": "text/plain"}, b"{}", False, id="not-json"),
        pytest.param({"Content-Type": "application/json"}, b"{", False, id="broken-json"),
        pytest.param(
            {"Content-Type": "application/json"}, b'{"batteryLevel": 7}', False, id="invalid"
        ),
        pytest.param({"Content-Type": "application/json"}, b"{}", True, id="chunked"),
        pytest.param({"Content-Type": "application/json"}, b" " * 5000 + b"{}", False, id="large"),
        pytest.param({"X-Request-ID": "not-a-uuid"}, b"", False, id="odd-request-id"),
    ],
)
async def test_anything_unusual_reaches_the_route_with_its_body_intact(
    app: Starlette,
    known_token: str,
    headers: dict[str, str],
    body: bytes,
    chunked: bool,
) -> None:
    headers = {"Authorization": f"Bearer {known_token}", **headers}
    headers["Authorization"] = headers["Authorization"].format(token=known_token)
    below = Below()

    assert await call(app, below, headers, body, chunked=chunked) == 299
    assert below.bodies == [body[:5] if chunked else body]


async def test_a_revoked_token_goes_to_the_route_at_once(
    app: Starlette,
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: PairedDevice,
    known_token: str,
) -> None:
    shown = await admin.client.get(f"/api/v1/admin/devices/{device.device_id}")
    token_id = shown.json()["tokens"][0]["tokenId"]
    revoked = await admin.client.post(
        f"/api/v1/admin/devices/{device.device_id}/tokens/{token_id}/revoke",
        headers=admin.write_headers(),
    )
    assert revoked.status_code == 200, revoked.text
    below = Below()

    assert await call(app, below, bearer(known_token), b"") == 299
    refused = await device_client.post(HEARTBEAT, headers=bearer(known_token))
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_revoked"
