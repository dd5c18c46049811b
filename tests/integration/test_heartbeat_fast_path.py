"""The heartbeat fast path: the same answers as the route, and everything unusual left to it."""

from __future__ import annotations

import json
import sqlite3
import uuid

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send
from tortoise import connections

from app.api.heartbeat_fast_path import HeartbeatFastPath
from app.edge.runtime import runtime
from simulator.protocol import Credentials, DeviceApi
from tests.backends import selected
from tests.factories import SignedInClient
from tests.scanner import bearer

HEARTBEAT = "/api/devices/heartbeat"
BODY = {"appVersion": "2.5.0", "osVersion": "17.6", "batteryLevel": 0.42}
# Headers that differ between any two responses, whichever layer answers.
PER_RESPONSE = {"x-request-id", "retry-after"}


def stable_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in PER_RESPONSE}


async def test_a_known_tokens_heartbeat_gets_the_routes_answer(
    device_client: httpx.AsyncClient, device: Credentials
) -> None:
    token = (await DeviceApi(device_client).access_token(device)).token
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
    device_client: httpx.AsyncClient, device: Credentials
) -> None:
    token = (await DeviceApi(device_client).access_token(device)).token
    assert (await device_client.post(HEARTBEAT, headers=bearer(token))).status_code == 200

    fast = await device_client.post(HEARTBEAT, headers=bearer(token))
    # A token not seen before goes through the route.
    routed = await device_client.post(
        HEARTBEAT, headers=bearer((await DeviceApi(device_client).access_token(device)).token)
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
        # The pieces of the body the client had not yet sent when this was called.
        self.pending: list[bytes] = []
        self.unsent_on_arrival: list[int] = []

    async def __call__(self, _scope: Scope, receive: Receive, send: Send) -> None:
        self.unsent_on_arrival.append(len(self.pending))
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self.bodies.append(b"".join(chunks))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(
    app: Starlette,
    below: Below,
    headers: dict[str, str],
    body: bytes,
    *,
    chunked: bool = False,
    declared: int | None = None,
    root_path: str = "",
) -> int:
    """One request straight into the fast path; `chunked` sends the body in two pieces with
    no Content-Length, `declared` sends it in two pieces under a Content-Length of its own."""
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if not chunked:
        length = len(body) if declared is None else declared
        raw.append((b"content-length", str(length).encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": HEARTBEAT,
        "root_path": root_path,
        "headers": raw,
        "app": app,
        "query_string": b"",
    }
    if declared is not None:
        pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    else:
        pieces = [body[:5], body[5:]] if chunked else [body]
    below.pending = pieces

    async def receive() -> Message:
        piece = pieces.pop(0)
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await HeartbeatFastPath(below, settings=runtime(app).settings)(scope, receive, send)
    return statuses[0]


@pytest.fixture
async def known_token(device_client: httpx.AsyncClient, device: Credentials) -> str:
    token = (await DeviceApi(device_client).access_token(device)).token
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
        pytest.param(
            {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            b"{}",
            False,
            id="chunked-and-content-length",
        ),
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
    assert below.bodies == [body]


async def test_a_body_longer_than_declared_is_not_read_past_the_limit(
    app: Starlette, known_token: str
) -> None:
    """Should a server deliver more than Content-Length said, the fast path stops reading
    at its limit and hands the rest, unread, to the ordinary stack and its body limit."""
    body = b"{}" + b" " * 99_998
    below = Below()

    assert await call(app, below, bearer(known_token), body, declared=2) == 299
    assert below.bodies == [body]
    # Handed over after 5 of its 100 pieces: 5,000 bytes, just past the 4,096 it reads.
    assert below.unsent_on_arrival == [95]


async def test_the_route_refuses_a_body_longer_than_declared(
    app: Starlette, known_token: str
) -> None:
    body = json.dumps({"appVersion": "2.5.0", "padding": " " * 40_000}).encode()
    statuses: list[int] = []
    pieces = [body[:5], body[5:]]

    async def receive() -> Message:
        piece = pieces.pop(0)
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    headers = [(b"content-length", b"20"), (b"content-type", b"application/json")]
    headers.append((b"authorization", f"Bearer {known_token}".encode()))
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": HEARTBEAT,
        "raw_path": HEARTBEAT.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("198.51.100.23", 40000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)

    assert statuses == [413]


async def test_under_a_root_path_the_router_decides(app: Starlette, known_token: str) -> None:
    below = Below()

    assert await call(app, below, bearer(known_token), b"", root_path="/polaris") == 299
    assert below.bodies == [b""]


@pytest.mark.skipif(
    selected().is_postgres, reason="holds the SQLite write lock from a second connection"
)
async def test_a_failing_database_is_answered_alike_on_both_paths(
    app: Starlette,
    database_url: str,
    device_client: httpx.AsyncClient,
    device: Credentials,
    known_token: str,
) -> None:
    fresh = (await DeviceApi(device_client).access_token(device)).token
    # A new app version makes the heartbeat write to the database, which another process
    # has locked; the route's answer escapes as an app exception, so the client takes it.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    body = {"appVersion": "9.9.9"}
    database = connections.get("default")
    _, [waited] = await database.execute_query("PRAGMA busy_timeout")
    await database.execute_script("PRAGMA busy_timeout = 50")
    locker = sqlite3.connect(database_url.removeprefix("sqlite://"), isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            fast = await c.post(HEARTBEAT, json=body, headers=bearer(known_token))
            routed = await c.post(HEARTBEAT, json=body, headers=bearer(fresh))
    finally:
        locker.execute("ROLLBACK")
        locker.close()
        await database.execute_script(f"PRAGMA busy_timeout = {waited[0]}")

    for failed in (fast, routed):
        assert failed.status_code == 500, failed.text
        assert failed.headers["content-type"] == "application/problem+json"
        assert failed.json()["code"] == "internal_error"
    assert fast.json() == routed.json()
    # The fast path still answers as the stack around the route would have.
    assert uuid.UUID(fast.headers["x-request-id"])
    assert "content-security-policy" in fast.headers
    request_id = str(uuid.uuid4())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        recovered = await c.post(
            HEARTBEAT, json=body, headers={**bearer(known_token), "X-Request-ID": request_id}
        )
    assert recovered.status_code == 200
    assert recovered.headers["x-request-id"] == request_id


async def test_a_revoked_token_goes_to_the_route_at_once(
    app: Starlette,
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: Credentials,
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
