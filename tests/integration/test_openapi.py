"""The OpenAPI document: served as generated, valid, covering every API route, and true to
the answers the app really gives (successes, standard refusals, the heartbeat fast path)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from pydantic import SecretStr
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Message

from app import web
from app.api import health
from app.api.heartbeat_fast_path import HeartbeatFastPath
from app.api.openapi import build_document, router_path_to_template
from app.api.operations import (
    ADMIN,
    CONSOLE_ADMIN,
    DEVICE,
    METRICS,
    OPERATIONS,
    PUBLIC,
    Operation,
)
from app.edge.runtime import runtime
from app.models import Role
from app.services import heartbeats
from app.settings import Settings
from simulator.admin import APP_EXCHANGE, AUDIT
from simulator.protocol import HEARTBEAT, POLL, DeviceApi, PkcePair
from tests import admin_phone
from tests.contract import Contract
from tests.factories import PairScanner, SignedInClient, make_user, sign_in
from tests.scanner import PUSH_TOKEN, bearer, poll_body, typed_body

OPENAPI = "/api/openapi.json"
METRICS_TOKEN = "openapi-metrics-token-0123456789"
USERS = "/api/v1/admin/users"
WEBHOOKS = "/api/v1/admin/webhooks"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    # With a token, /metrics refuses the unauthorised as in production.
    update = {"metrics_token": SecretStr(METRICS_TOKEN), **getattr(request, "param", {})}
    return settings.model_copy(update=update)


@pytest.fixture
def contract() -> Contract:
    return Contract(build_document())


@pytest.fixture
def client(client: httpx.AsyncClient, contract: Contract) -> httpx.AsyncClient:
    contract.watch(client)
    return client


@pytest.fixture
def device_client(device_client: httpx.AsyncClient, contract: Contract) -> httpx.AsyncClient:
    contract.watch(device_client)
    return device_client


@pytest.fixture
async def operator_client(app: Starlette, contract: Contract) -> AsyncIterator[httpx.AsyncClient]:
    """A second console browser, for an operator's session."""
    transport = httpx.ASGITransport(app=app, client=("192.0.2.44", 50100))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        contract.watch(c)
        yield c


async def test_the_served_document_is_the_generated_one_and_valid(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(OPENAPI)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == build_document()
    validate(response.json())


def _routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _routes(route.routes, prefix + route.path)
            if not route.routes:
                yield "*", prefix + route.path
        elif isinstance(route, Route):
            for method in (route.methods or set()) - {"HEAD"}:
                yield method, router_path_to_template(prefix + route.path)


def test_every_api_route_is_documented_and_every_documented_operation_is_routed(
    app: Starlette, contract: Contract
) -> None:
    console = {r for group in web.GROUPS for r in _routes(group.mounted())}
    served = set(_routes(app.routes)) - console
    documented = {
        (method.upper(), path)
        for path, item in contract.document["paths"].items()
        for method in item
    }

    assert served - documented == set(), "served, not in app/api/operations.py OPERATIONS"
    assert documented - served == set(), "documented, not served"


async def _typed_pairing(admin: SignedInClient, device_client: httpx.AsyncClient) -> None:
    """A typed code: pending, polled too soon, approved, collected."""
    pkce = PkcePair.generate()
    minted = await admin.api.mint_code()
    pending = await device_client.post(
        "/api/devices/register", json=typed_body(minted.code, pkce=pkce)
    )
    await admin.api.pairing_session(minted.pairing_session_id)
    body = poll_body(pending.json()["pairingId"], pkce)
    assert (await device_client.post(POLL, json=body)).json()["code"] == "authorization_pending"
    assert (await device_client.post(POLL, json=body)).json()["code"] == "slow_down"
    await admin.api.approve(minted.pairing_session_id)
    assert (await device_client.post(POLL, json=body)).status_code == 201

    rejected = await admin.api.mint_code()
    await device_client.post("/api/devices/register", json=typed_body(rejected.code))
    await admin.api.reject(rejected.pairing_session_id)
    await admin.api.cancel((await admin.api.mint_code()).pairing_session_id)


async def _admin_app(admin: SignedInClient, device_client: httpx.AsyncClient) -> None:
    """The admin's phone: QR code, exchange, refresh, connected phones, revoke."""
    qr = await admin_phone.generate(admin)
    phone = admin_phone.tokens(await admin_phone.exchange(device_client, qr["payload"]["token"]))
    refreshed = await admin_phone.refresh(device_client, phone.refresh_token)
    by_phone = bearer(refreshed.json()["accessToken"])
    assert (await device_client.get(admin_phone.APP_DEVICES, headers=by_phone)).status_code == 200
    assert (await device_client.get(AUDIT, headers=by_phone)).status_code == 200
    assert (await admin.client.get(admin_phone.APP_DEVICES)).status_code == 200
    revoked = await admin.client.delete(
        f"{admin_phone.APP_DEVICES}/{phone.device_id}", headers=admin.write_headers()
    )
    assert revoked.status_code == 204


async def _webhooks(admin: SignedInClient) -> None:
    """An endpoint on a literal public address (no lookup, never sent to here)."""
    body = {"url": "https://93.184.215.14/polaris", "events": ["*"]}
    created = await admin.client.post(WEBHOOKS, json=body, headers=admin.write_headers())
    assert created.status_code == 201, created.text
    endpoint = f"{WEBHOOKS}/{created.json()['webhookId']}"
    assert (await admin.client.get(WEBHOOKS)).status_code == 200
    sent = await admin.client.post(f"{endpoint}/test", headers=admin.write_headers())
    assert sent.status_code == 202
    assert (await admin.client.get(f"{endpoint}/deliveries")).status_code == 200
    assert (await admin.client.delete(endpoint, headers=admin.write_headers())).status_code == 204


async def _users_and_session(admin: SignedInClient) -> None:
    new_user = {"email": "ops@example.com", "password": "long enough password", "role": "operator"}
    created = await admin.client.post(USERS, json=new_user, headers=admin.write_headers())
    assert created.status_code == 201
    assert (await admin.client.get(USERS)).status_code == 200
    assert (await admin.client.get("/api/v1/auth/me")).status_code == 200
    logout = await admin.client.post("/api/v1/auth/logout", headers=admin.write_headers())
    assert logout.status_code == 204


async def test_every_success_answer_matches_its_documented_schema(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    pair: PairScanner,
    contract: Contract,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    device_api = DeviceApi(device_client)
    credentials = await pair()
    token = await device_api.access_token(credentials)
    for _ in range(2):  # the route, then the fast path
        await device_api.heartbeat(token)
    await device_api.upload_push_token(token, push_token=PUSH_TOKEN, apns_environment="sandbox")
    await device_api.rotate(credentials)
    await device_api.jwks()
    detail = await admin.api.device(credentials.device_id)
    await admin.api.devices_page(limit=1, kind="scanner")
    assert (await admin.client.get("/api/v1/admin/fleet/summary")).status_code == 200
    await admin.api.audit()
    await admin.api.revoke_token(credentials.device_id, detail["tokens"][0]["tokenId"])
    await admin.api.deregister(credentials.device_id)
    await _typed_pairing(admin, device_client)
    await _admin_app(admin, device_client)
    await _webhooks(admin)
    for path in ("/healthz", "/readyz", OPENAPI):
        assert (await device_client.get(path)).status_code == 200
    assert (await device_client.get("/metrics", headers=bearer(METRICS_TOKEN))).status_code == 200

    async def database_down() -> bool:
        return False

    monkeypatch.setattr(health, "database_ok", database_down)
    assert (await device_client.get("/readyz")).status_code == 503
    await _users_and_session(admin)

    answered = {(a.operation_id, a.status) for a in contract.seen if a.code is None}
    assert contract.success_statuses() - answered == set()


def _filled(path: str, value: str | None = None) -> str:
    return re.sub(r"\{\w+(?::\w+)?\}", lambda _: value or str(uuid.uuid4()), path)


@dataclass
class Callers:
    """Who calls in the probes: the admin, a device, an operator (signed in when needed)."""

    admin: SignedInClient
    device_client: httpx.AsyncClient
    pair: PairScanner
    operator_client: httpx.AsyncClient
    _device_token: str | None = None
    _operator: SignedInClient | None = field(default=None, repr=False)

    async def authorised(self, operation: Operation) -> tuple[httpx.AsyncClient, dict[str, str]]:
        """A client and headers this operation lets through."""
        if operation.access is PUBLIC:
            return self.device_client, {}
        if operation.access is METRICS:
            return self.device_client, bearer(METRICS_TOKEN)
        if operation.access is DEVICE:
            if self._device_token is None:
                credentials = await self.pair()
                self._device_token = (
                    await DeviceApi(self.device_client).access_token(credentials)
                ).token
            return self.device_client, bearer(self._device_token)
        return self.admin.client, self.admin.write_headers()

    async def operator(self) -> SignedInClient:
        if self._operator is None:
            user = await make_user(Role.OPERATOR)
            self._operator = await sign_in(self.operator_client, user)
        return self._operator


@pytest.fixture
def callers(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    pair: PairScanner,
    operator_client: httpx.AsyncClient,
) -> Callers:
    return Callers(admin, device_client, pair, operator_client)


# What was sent, the code it must be refused with, and the answer.
Probe = tuple[str, str, httpx.Response]


async def _send(
    client: httpx.AsyncClient,
    operation: Operation,
    headers: dict[str, str],
    content: bytes | None = None,
    **options: Any,
) -> httpx.Response:
    if content is None and operation.body is not None:
        content = b"{}"
        headers = {**JSON, **headers}
    path = options.pop("path", None) or _filled(operation.path)
    return await client.request(operation.method, path, headers=headers, content=content, **options)


async def _auth_refusals(operation: Operation, callers: Callers) -> list[Probe]:
    if operation.access is PUBLIC:
        return []
    anonymous = "invalid_credentials" if operation.access is DEVICE else "not_authenticated"
    # The metrics token is no JWT: any other bearer is simply not it.
    wrong_bearer = "not_authenticated" if operation.access is METRICS else "invalid_credentials"
    device = callers.device_client
    not_a_jwt = {"Authorization": "Bearer not-a-jwt"}
    probes = [
        ("no credentials", anonymous, await _send(device, operation, {})),
        ("a bearer that is no JWT", wrong_bearer, await _send(device, operation, not_a_jwt)),
    ]
    if operation.access in (ADMIN, CONSOLE_ADMIN):
        operator = await callers.operator()
        answer = await _send(operator.client, operation, operator.write_headers())
        probes.append(("an operator's session", "forbidden", answer))
    if operation.checks_csrf:
        answer = await _send(callers.admin.client, operation, {})
        probes.append(("the session cookie without the CSRF header", "forbidden", answer))
    return probes


async def _body_refusals(operation: Operation, callers: Callers) -> list[Probe]:
    client, headers = await callers.authorised(operation)
    as_json = {**headers, **JSON}
    padding = b'{"padding": "' + b"x" * 17_000 + b'"}'
    probes = [
        (
            "a body over the limit",
            "payload_too_large",
            await _send(client, operation, as_json, padding),
        )
    ]
    if operation.body is None:
        return probes
    as_text = {**headers, "Content-Type": "text/plain"}
    return [
        *probes,
        ("malformed JSON", "validation_error", await _send(client, operation, as_json, b"{")),
        ("a text body", "unsupported_media_type", await _send(client, operation, as_text, b"{}")),
        (
            "an unknown field",
            "validation_error",
            await _send(client, operation, as_json, b'{"unexpected": true}'),
        ),
    ]


async def _lookup_refusals(operation: Operation, callers: Callers) -> list[Probe]:
    client, headers = await callers.authorised(operation)
    probes = []
    if operation.query is not None:
        answer = await _send(client, operation, headers, params={"limit": "0"})
        probes.append(("a limit of 0", "validation_error", answer))
    if operation.has_path_parameters:
        for label, value in (("unknown ids", None), ("an id that is no UUID", "not-a-uuid")):
            answer = await _send(client, operation, headers, path=_filled(operation.path, value))
            probes.append((label, "not_found", answer))
    return probes


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: o.operation_id)
async def test_standard_refusals_answer_documented_codes(
    operation: Operation, callers: Callers, contract: Contract
) -> None:
    probes = [
        *await _auth_refusals(operation, callers),
        *await _body_refusals(operation, callers),
        *await _lookup_refusals(operation, callers),
    ]

    for sent, expected, response in probes:
        answer = contract.check_response(response)
        assert answer.code == expected, f"{operation.operation_id}, {sent}: {response.text}"


async def _fast_path_answer(app: Starlette, token: str) -> httpx.Response:
    """A heartbeat straight into the fast path, which must answer it on its own."""

    async def below(*_: Any) -> None:
        raise AssertionError("the fast path handed a known token's heartbeat on")

    body = b'{"batteryLevel": 0.5}'
    raw_headers = [
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "path": HEARTBEAT,
        "root_path": "",
        "headers": raw_headers,
        "app": app,
        "query_string": b"",
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await HeartbeatFastPath(below, settings=runtime(app).settings)(scope, receive, send)
    start, *rest = sent
    return httpx.Response(
        start["status"],
        headers=[(k.decode(), v.decode()) for k, v in start["headers"]],
        content=b"".join(m.get("body", b"") for m in rest),
        request=httpx.Request("POST", f"http://testserver{HEARTBEAT}"),
    )


@pytest.fixture
async def known_token(device_client: httpx.AsyncClient, pair: PairScanner) -> str:
    """An access token the route has verified, so the fast path knows it."""
    token = (await DeviceApi(device_client).access_token(await pair())).token
    assert (await device_client.post(HEARTBEAT, headers=bearer(token))).status_code == 200
    return token


async def test_the_fast_paths_heartbeat_answer_is_the_documented_one(
    app: Starlette, known_token: str, contract: Contract
) -> None:
    answer = contract.check_response(await _fast_path_answer(app, known_token))

    assert (answer.operation_id, answer.status) == ("heartbeat", 200)


@pytest.mark.parametrize("settings", [{"heartbeats_per_device": "1/minute"}], indirect=True)
async def test_the_fast_paths_rate_limit_is_a_documented_refusal(
    app: Starlette, known_token: str, contract: Contract
) -> None:
    response = await _fast_path_answer(app, known_token)

    assert contract.check_response(response).code == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("failure", "code"),
    [(RedisError("connection refused"), "unavailable"), (RuntimeError("bug"), "internal_error")],
    ids=["backend-down", "unexpected"],
)
async def test_the_fast_paths_failures_are_documented_refusals(
    app: Starlette,
    known_token: str,
    contract: Contract,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    code: str,
) -> None:
    async def failing(**_: Any) -> None:
        raise failure

    monkeypatch.setattr(heartbeats, "record", failing)

    assert contract.check_response(await _fast_path_answer(app, known_token)).code == code


@pytest.mark.parametrize(
    "settings",
    [{"redeem_failures_per_ip": "1/minute", "login_failures_per_ip": "1/minute"}],
    indirect=True,
)
async def test_rate_limits_are_documented_refusals(
    device_client: httpx.AsyncClient, contract: Contract
) -> None:
    attempts = [
        ("/api/devices/register", typed_body("AAAA-AAAA")),
        ("/api/v1/auth/login", {"email": "nobody@example.com", "password": "wrong"}),
        (APP_EXCHANGE, admin_phone.app_body("A" * 43)),
    ]
    for path, body in attempts:
        for _ in range(2):
            refused = await device_client.post(path, json=body)

        assert contract.check_response(refused).code == "rate_limited", path
