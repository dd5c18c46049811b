"""The secrets canary (docs/security.md): known secrets pushed through every flow of a real
server, and on PostgreSQL a real worker, then looked for wherever none may be: the logs (at
DEBUG), the audit rows, every answer but the one made to hand a secret out, the metrics.

Every secret a flow produces or sends is collected (`tests.canary` says which part of each
is secret); the search must find none of them, whole or in part, and prints where it did.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from secrets import token_urlsafe
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from simulator.protocol import (
    HEARTBEAT,
    POLL,
    PUSH_TOKEN,
    REGISTER,
    ROTATE,
    TOKEN,
    PairingUri,
    PkcePair,
    parse_pairing_uri,
)
from tests import backends
from tests.admin_phone import APP_DEVICES, APP_REFRESH, app_body
from tests.canary import Answers, Canary, Haystack
from tests.harness import (
    REPO_ROOT,
    ServerProcess,
    WorkerProcess,
    base_env,
    free_port,
    run_cli,
)
from tests.scanner import PUSH_TOKEN as PUSH_TOKEN_HEX
from tests.scanner import scan_body, typed_body

pytestmark = [pytest.mark.slow]

LOGIN = "/api/v1/auth/login"
SESSIONS = "/api/v1/admin/pairing-sessions"
DEVICES = "/api/v1/admin/devices"
AUDIT = "/api/v1/admin/audit"
APP_QR = "/api/v1/admin/app/generate-qr"
APP_EXCHANGE = "/api/v1/admin/app/exchange-token"
ADMIN_EMAIL = "canary-admin@example.com"
OPERATOR_EMAIL = "canary-operator@example.com"
CODE_TTL = 6
# Short windows, so the jobs (expiry, presence sweep, last-seen flush) act within the run.
ENVIRONMENT = {
    "LOG_LEVEL": "DEBUG",
    "LOG_JSON": "true",
    "PAIRING_CODE_TTL_SECONDS": str(CODE_TTL),
    "PAIRING_POLL_INTERVAL_SECONDS": "1",
    "HEARTBEAT_ONLINE_WINDOW_SECONDS": "2",
    "PRESENCE_SWEEP_EVERY_SECONDS": "1",
    "EXPIRE_SESSIONS_EVERY_SECONDS": "1",
    "LAST_SEEN_FLUSH_EVERY_SECONDS": "1",
    # A rotated-out pair coming back is then a stolen copy at once, not a lost answer.
    "ROTATION_RACE_WINDOW_SECONDS": "0",
    "REDEEM_FAILURES_PER_IP": "1000/minute",
    # Every event goes to a receiver on loopback, whose deliveries are searched too.
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "WEBHOOK_DELIVERY_EVERY_SECONDS": "1",
}


def _secret() -> str:
    return token_urlsafe(32)


class MeteredWorker(WorkerProcess):
    """`polaris worker` serving its job metrics, so they are searched too."""

    metrics_port: int = 0

    def start(self, timeout: float = 30) -> MeteredWorker:
        self.metrics_port = free_port()
        self.spawn(["worker", "--metrics-port", str(self.metrics_port)], self.env)
        self.wait_until(lambda: "worker_started" in self.output(), timeout, "worker")
        return self


@dataclass
class Deployment:
    backend: str
    server: ServerProcess
    worker: MeteredWorker | None
    cli_output: str
    rows: Callable[[], dict[str, list[str]]]
    redis_url: str | None


def _sqlite_rows(path: Path) -> Callable[[], dict[str, list[str]]]:
    def rows() -> dict[str, list[str]]:
        with sqlite3.connect(path) as connection:
            tables = [
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'"
                )
            ]
            return {
                table: [repr(row) for row in connection.execute(f'SELECT * FROM "{table}"')]  # noqa: S608
                for table in tables
            }

    return rows


def _postgres_rows(url: str) -> Callable[[], dict[str, list[str]]]:
    async def read() -> dict[str, list[str]]:
        import asyncpg

        connection = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
        try:
            tables = await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
            return {
                t["tablename"]: [
                    repr(tuple(row.values()))
                    for row in await connection.fetch(f'SELECT * FROM "{t["tablename"]}"')  # noqa: S608
                ]
                for t in tables
            }
        finally:
            await connection.close()

    return lambda: asyncio.run(read())


@pytest.fixture
def canary() -> Canary:
    canary = Canary()
    canary.add("server secret key", _secret())
    canary.add("metrics token", _secret())
    canary.add("admin password", token_urlsafe(18))
    return canary


def _value(canary: Canary, kind: str) -> str:
    return next(s.value for s in canary.secrets if s.kind == kind)


@pytest.fixture(
    params=[
        pytest.param("embedded", id="embedded"),
        pytest.param("postgres", id="postgres", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
def deployment(
    request: pytest.FixtureRequest, canary: Canary, tmp_path: Path
) -> Iterator[Deployment]:
    backend: str = request.param
    overrides = {
        **ENVIRONMENT,
        "SECRET_KEY": _value(canary, "server secret key"),
        "METRICS_TOKEN": _value(canary, "metrics token"),
    }
    redis_url = None
    if backend == "postgres":
        suite_database = urlsplit(backends.POSTGRES_URL).path.lstrip("/") or "test"
        database_url = backends.fresh_postgres_database(
            backends.POSTGRES_URL, f"{suite_database}_canary"
        )
        # The suite's own Redis db: this test runs alone in it, and flushes it first.
        redis_url = backends.REDIS_URL
        with redis.Redis.from_url(redis_url) as connection:
            connection.flushdb()
        overrides |= {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
        rows = _postgres_rows(database_url)
    else:
        rows = _sqlite_rows(tmp_path / "polaris.db")
    env = base_env(tmp_path, **overrides)
    migrated = run_cli(["migrate"], env)
    created = run_cli(
        [
            "create-admin",
            "--email",
            ADMIN_EMAIL,
            "--password",
            _value(canary, "admin password"),
        ],
        env,
    )
    assert migrated.returncode == created.returncode == 0, created.stdout + created.stderr
    cli_output = "".join((migrated.stdout, migrated.stderr, created.stdout, created.stderr))
    server = ServerProcess(tmp_path, env)
    worker = MeteredWorker(tmp_path, env) if backend == "postgres" else None
    try:
        server.start()
        if worker is not None:
            worker.start()
        yield Deployment(backend, server, worker, cli_output, rows, redis_url)
    finally:
        server.stop()
        if worker is not None:
            worker.stop()


class WebhookReceiver:
    """Keeps every webhook delivery, headers and body, as text to search."""

    def __init__(self) -> None:
        self.deliveries: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.deliveries.append(f"{self.headers}\n{body.decode()}")
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    webhooks = WebhookReceiver()
    try:
        yield webhooks
    finally:
        webhooks.close()


@dataclass
class Run:
    """The flows' shared state: who is signed in, and what has been collected."""

    url: str
    canary: Canary
    answers: Answers
    admin: httpx.Client = field(init=False)
    device: httpx.Client = field(init=False)
    csrf: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.admin = self.answers.client(self.url)
        self.device = self.answers.client(self.url)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *_: object) -> None:
        self.admin.close()
        self.device.close()

    def client(self, **options: Any) -> httpx.Client:
        return self.answers.client(self.url, **options)

    def sign_in(self, client: httpx.Client, email: str, password: str) -> dict[str, str]:
        response = client.post(LOGIN, json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        csrf = self.canary.add("CSRF token", response.json()["csrfToken"])
        session = self.canary.add("console session id", client.cookies["polaris_session"])
        self.answers.issued(response, csrf, session)
        return {"X-CSRF-Token": csrf}

    def mint(self) -> tuple[dict[str, Any], PairingUri]:
        response = self.admin.post(SESSIONS, headers=self.csrf)
        assert response.status_code == 201, response.text
        minted: dict[str, Any] = response.json()
        scanned = parse_pairing_uri(minted["pairingUri"])
        self.canary.add_code(minted["code"])
        self.canary.add("console proof", scanned.proof)
        self.answers.issued(response, minted["code"], scanned.proof)
        return minted, scanned

    def pkce(self) -> PkcePair:
        pair = PkcePair.generate()
        # The challenge is not secret: RFC 7636 sends it in the clear, and the server keeps it.
        self.canary.add("device code verifier", pair.verifier)
        return pair

    def credentials(self, response: httpx.Response, kind: str = "device") -> dict[str, str]:
        body = response.json()
        pair = {
            "deviceToken": self.canary.add(f"{kind} token", body["deviceToken"]),
            "deviceSecret": self.canary.add(f"{kind} secret", body["deviceSecret"]),
        }
        self.answers.issued(response, *pair.values())
        return {**pair, "deviceId": body.get("deviceId", "")}

    def pair_by_qr(self) -> dict[str, str]:
        _, scanned = self.mint()
        registered = self.device.post(REGISTER, json=scan_body(_uri(scanned), pkce=self.pkce()))
        assert registered.status_code == 201, registered.text
        return self.credentials(registered)

    def access_token(self, pair: dict[str, str]) -> str:
        response = self.device.post(TOKEN, json=_pair_only(pair))
        assert response.status_code == 200, response.text
        token = self.canary.add("device access token", response.json()["accessToken"])
        self.answers.issued(response, token)
        return token

    def app_tokens(self, response: httpx.Response) -> dict[str, str]:
        assert response.status_code == 200, response.text
        body = response.json()
        tokens = {
            "access": self.canary.add("admin-app access token", body["accessToken"]),
            "refresh": self.canary.add("admin-app refresh token", body["refreshToken"]),
            "deviceId": body["deviceId"],
        }
        self.answers.issued(response, tokens["access"], tokens["refresh"])
        return tokens

    def app_qr_token(self) -> str:
        response = self.admin.post(APP_QR, headers=self.csrf)
        assert response.status_code == 201, response.text
        token = self.canary.add("admin-app QR token", response.json()["payload"]["token"])
        self.answers.issued(response, token)
        return token


def _uri(scanned: PairingUri) -> str:
    return f"polaris://pair?code={scanned.code}&proof={scanned.proof}&origin={scanned.origin}"


def _pair_only(pair: dict[str, str]) -> dict[str, str]:
    return {"deviceToken": pair["deviceToken"], "deviceSecret": pair["deviceSecret"]}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _refused(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["code"] == code, response.text


def sign_in_attempts(run: Run, password: str) -> None:
    wrong = run.canary.add("wrong password", token_urlsafe(18))
    _refused(run.admin.post(LOGIN, json={"email": ADMIN_EMAIL, "password": wrong}), 401)
    # The password typed into the email field, a mistake people make every day.
    _refused(run.admin.post(LOGIN, json={"email": password, "password": password}), 401)
    # The console's sign-in form, as its script posts it.
    assert run.admin.get("/login").status_code == 200
    form = {"email": ADMIN_EMAIL, "password": wrong, "next": "/"}
    page_csrf = {"X-CSRF-Token": run.admin.cookies["polaris_csrf"]}
    _refused(run.admin.post("/login", data=form, headers=page_csrf), 401)
    run.csrf = run.sign_in(run.admin, ADMIN_EMAIL, password)


def operator_account(run: Run) -> None:
    password = run.canary.add("operator password", token_urlsafe(18))
    created = run.admin.post(
        "/api/v1/admin/users",
        json={"email": OPERATOR_EMAIL, "password": password, "role": "operator"},
        headers=run.csrf,
    )
    assert created.status_code == 201, created.text
    with run.client() as operator:
        csrf = run.sign_in(operator, OPERATOR_EMAIL, password)
        _refused(operator.post(SESSIONS, headers=csrf), 403, "forbidden")
        assert operator.get(DEVICES).status_code == 200


def scanned_pairing(run: Run) -> dict[str, str]:
    _, scanned = run.mint()
    body = scan_body(_uri(scanned), pkce=run.pkce())
    registered = run.device.post(REGISTER, json=body)
    assert registered.status_code == 201, registered.text
    pair = run.credentials(registered)
    # The same QR code again: single use.
    _refused(run.device.post(REGISTER, json=body), 409, "code_already_used")
    return pair


def wrong_proofs(run: Run) -> None:
    _, scanned = run.mint()
    for attempt in range(1, 6):
        wrong = run.canary.add("wrong console proof", token_urlsafe(43)[:43])
        body = scan_body(_uri(scanned), pkce=run.pkce(), pairingProof=wrong)
        refused = run.device.post(REGISTER, json=body)
        # The fifth burns the code.
        _refused(refused, *((400, "invalid_proof") if attempt < 5 else (410, "session_burned")))
    right = scan_body(_uri(scanned), pkce=run.pkce())
    _refused(run.device.post(REGISTER, json=right), 410, "session_burned")


def typed_pairing(run: Run) -> dict[str, str]:
    minted, _ = run.mint()
    pkce = run.pkce()
    pending = run.device.post(REGISTER, json=typed_body(minted["code"], pkce=pkce))
    assert pending.status_code == 202, pending.text
    pairing_id = pending.json()["pairingId"]
    poll = {"pairingId": pairing_id, "codeVerifier": pkce.verifier}
    _refused(run.device.post(POLL, json=poll), 400, "authorization_pending")
    shown = run.admin.get(f"{SESSIONS}/{minted['pairingSessionId']}")
    assert shown.json()["state"] == "pending_approval", shown.text
    time.sleep(1.05)
    wrong = {"pairingId": pairing_id, "codeVerifier": run.pkce().verifier}
    _refused(run.device.post(POLL, json=wrong), 400)
    approved = run.admin.post(
        f"{SESSIONS}/{minted['pairingSessionId']}/approve", json={}, headers=run.csrf
    )
    assert approved.status_code == 200, approved.text
    time.sleep(1.05)
    collected = run.device.post(POLL, json=poll)
    assert collected.status_code == 201, collected.text
    pair = run.credentials(collected)
    time.sleep(1.05)
    _refused(run.device.post(POLL, json=poll), 409, "code_already_used")
    return pair


def refused_codes(run: Run) -> None:
    # Rejected by the admin.
    minted, _ = run.mint()
    pkce = run.pkce()
    pending = run.device.post(REGISTER, json=typed_body(minted["code"], pkce=pkce))
    assert pending.status_code == 202, pending.text
    rejected = run.admin.post(f"{SESSIONS}/{minted['pairingSessionId']}/reject", headers=run.csrf)
    assert rejected.status_code == 200, rejected.text
    time.sleep(1.05)
    poll = {"pairingId": pending.json()["pairingId"], "codeVerifier": pkce.verifier}
    _refused(run.device.post(POLL, json=poll), 403, "access_denied")
    # Cancelled by the admin, then tried.
    minted, scanned = run.mint()
    cancelled = run.admin.delete(f"{SESSIONS}/{minted['pairingSessionId']}", headers=run.csrf)
    assert cancelled.status_code in (200, 204), cancelled.text
    refused = run.device.post(REGISTER, json=scan_body(_uri(scanned), pkce=run.pkce()))
    assert refused.status_code >= 400, refused.text
    # Unknown.
    unknown = run.canary.add_code("ZZZZ9999")
    _refused(run.device.post(REGISTER, json=typed_body(unknown, pkce=run.pkce())), 400)


def device_runtime(run: Run, pair: dict[str, str]) -> str:
    token = run.access_token(pair)
    beat = run.device.post(HEARTBEAT, json={"batteryLevel": 0.5}, headers=_bearer(token))
    assert beat.status_code == 200, beat.text
    pushed = run.device.put(
        PUSH_TOKEN,
        json={"pushToken": PUSH_TOKEN_HEX[::-1], "apnsEnvironment": "sandbox"},
        headers=_bearer(token),
    )
    assert pushed.status_code in (200, 204), pushed.text
    wrong = {
        **_pair_only(pair),
        "deviceSecret": run.canary.add("wrong device secret", "pxs_" + _secret()),
    }
    _refused(run.device.post(TOKEN, json=wrong), 401, "invalid_credentials")
    return token


def rotation_and_reuse(run: Run, first: dict[str, str]) -> None:
    key = {"Idempotency-Key": token_urlsafe(12)}
    rotated = run.device.post(ROTATE, json=_pair_only(first), headers=key)
    assert rotated.status_code == 200, rotated.text
    second = run.credentials(rotated)
    # A retry after a lost answer is handed the same new pair, once more by design.
    retried = run.device.post(ROTATE, json=_pair_only(first), headers=key)
    assert retried.status_code == 200, retried.text
    run.answers.issued(retried, second["deviceToken"], second["deviceSecret"])
    again = run.device.post(ROTATE, json=_pair_only(second))
    assert again.status_code == 200, again.text
    third = run.credentials(again)
    token = run.access_token(third)
    # The first pair, stolen, comes back: the device's credentials are revoked.
    stolen = run.device.post(TOKEN, json=_pair_only(first))
    assert stolen.status_code in (401, 409), stolen.text
    _refused(run.device.post(TOKEN, json=_pair_only(third)), 401)
    _refused(run.device.post(HEARTBEAT, json={}, headers=_bearer(token)), 401)


def admin_revocation_and_deregistration(run: Run, typed: dict[str, str]) -> None:
    token = run.access_token(typed)
    detail = run.admin.get(f"{DEVICES}/{typed['deviceId']}").json()
    token_id = detail["tokens"][0]["tokenId"]
    revoked = run.admin.post(
        f"{DEVICES}/{typed['deviceId']}/tokens/{token_id}/revoke", headers=run.csrf
    )
    assert revoked.status_code == 200, revoked.text
    _refused(run.device.post(HEARTBEAT, json={}, headers=_bearer(token)), 401, "token_revoked")
    _refused(run.device.post(TOKEN, json=_pair_only(typed)), 401)

    doomed = run.pair_by_qr()
    token = run.access_token(doomed)
    gone = run.admin.delete(f"{DEVICES}/{doomed['deviceId']}", headers=run.csrf)
    assert gone.status_code in (200, 204), gone.text
    _refused(run.device.post(HEARTBEAT, json={}, headers=_bearer(token)), 401)
    _refused(run.device.post(TOKEN, json=_pair_only(doomed)), 401)
    _refused(run.device.post(ROTATE, json=_pair_only(doomed)), 401)


def admin_app(run: Run, device_token: str) -> None:
    with run.client() as phone:
        bad = run.canary.add("wrong admin-app QR token", _secret()[:43])
        _refused(phone.post(APP_EXCHANGE, json=app_body(bad)), 400)
        qr = run.app_qr_token()
        tokens = run.app_tokens(phone.post(APP_EXCHANGE, json=app_body(qr)))
        _refused(phone.post(APP_EXCHANGE, json=app_body(qr)), 409, "code_already_used")
        assert phone.get(DEVICES, headers=_bearer(tokens["access"])).status_code == 200
        # Each kind of token is refused where the other kind belongs.
        _refused(phone.post(HEARTBEAT, json={}, headers=_bearer(tokens["access"])), 401)
        _refused(phone.get(DEVICES, headers=_bearer(device_token)), 401)
        refreshed = run.app_tokens(
            phone.post(APP_REFRESH, json={"refreshToken": tokens["refresh"]})
        )
        assert phone.get(APP_DEVICES, headers=_bearer(refreshed["access"])).status_code == 200
        # The old refresh token replayed: the connection is revoked.
        replay = phone.post(APP_REFRESH, json={"refreshToken": tokens["refresh"]})
        assert replay.status_code in (401, 409), replay.text
        _refused(phone.get(DEVICES, headers=_bearer(refreshed["access"])), 401)
        _refused(phone.post(APP_REFRESH, json={"refreshToken": refreshed["refresh"]}), 401)

        second = run.app_tokens(phone.post(APP_EXCHANGE, json=app_body(run.app_qr_token())))
        revoked = run.admin.delete(f"{APP_DEVICES}/{second['deviceId']}", headers=run.csrf)
        assert revoked.status_code == 204, revoked.text
        _refused(phone.get(DEVICES, headers=_bearer(second["access"])), 401)
        _refused(phone.post(APP_REFRESH, json={"refreshToken": second["refresh"]}), 401)


def bad_input(run: Run, pair: dict[str, str], access_token: str, proof: str) -> None:
    """Secrets where no secret belongs: query strings, headers, broken and misshapen bodies."""
    token, secret = pair["deviceToken"], pair["deviceSecret"]
    device = run.device
    _refused(device.post(TOKEN, params=_pair_only(pair), json={}), 400, "validation_error")
    truncated = json.dumps(_pair_only(pair))[:-3]
    json_type = {"Content-Type": "application/json"}
    _refused(device.post(TOKEN, content=truncated, headers=json_type), 400)
    _refused(device.post(TOKEN, json={"deviceToken": token, "deviceSecret": 12}), 400)
    _refused(device.post(TOKEN, json={**_pair_only(pair), "note": secret}), 400)
    _refused(device.post(TOKEN, json={secret: token}), 400)
    _refused(device.post(TOKEN, json=[token, secret]), 400)
    _refused(
        device.post(TOKEN, content=f"{token}:{secret}", headers={"Content-Type": "text/plain"}), 415
    )
    _refused(device.post(TOKEN, json={**_pair_only(pair), "pad": "x" * 20_000}), 413)
    garbled = {"deviceToken": token + "!", "deviceSecret": secret + "\x00"}
    assert device.post(TOKEN, json=garbled).status_code in (400, 401)

    basic = run.canary.add(
        "credentials as HTTP Basic", base64.b64encode(f"{token}:{secret}".encode()).decode()
    )
    for authorization in (
        f"Bearer {secret}",
        f"Basic {basic}",
        access_token,
        f"Bearer {access_token}x",
    ):
        _refused(device.post(HEARTBEAT, json={}, headers={"Authorization": authorization}), 401)
    _refused(
        device.post(
            HEARTBEAT, content="{" + access_token, headers={**json_type, **_bearer(access_token)}
        ),
        400,
    )

    _, scanned = run.mint()
    misshapen = [
        scan_body(_uri(scanned), pkce=run.pkce(), pairingProof=scanned.proof + "!"),
        scan_body(_uri(scanned), pkce=run.pkce(), code=scanned.proof),
        scan_body(_uri(scanned), codeChallenge=run.pkce().verifier),
        {**scan_body(_uri(scanned), pkce=run.pkce()), scanned.proof: scanned.code},
    ]
    for body in misshapen:
        _refused(device.post(REGISTER, json=body), 400, "validation_error")
    _refused(device.post(REGISTER, params={"code": scanned.code, "proof": proof}, json={}), 400)
    _refused(device.post(POLL, json={"pairingId": "not-an-id", "codeVerifier": proof}), 400)

    password = _value(run.canary, "admin password")
    _refused(
        run.admin.post(LOGIN, content='{"email": "x", "password": "' + password, headers=json_type),
        400,
    )
    _refused(run.admin.post(LOGIN, json={"email": ADMIN_EMAIL, "pass": password}), 400)
    _refused(run.admin.post(LOGIN, data={"email": ADMIN_EMAIL, "password": password}), 415)
    _refused(run.admin.get(AUDIT, params={"cursor": secret}), 400)
    _refused(run.admin.get(AUDIT, params={secret: "1"}), 400)
    assert run.admin.get(DEVICES, params={"q": secret}).status_code == 200
    forged = run.canary.add("forged CSRF token", _secret())
    _refused(run.admin.post(SESSIONS, headers={"X-CSRF-Token": forged}), 403)
    with run.client(
        cookies={"polaris_session": run.canary.add("forged session id", _secret())}
    ) as stranger:
        _refused(stranger.get(DEVICES), 401)
    wrong_metrics = run.canary.add("wrong metrics token", _secret())
    _refused(device.get("/metrics", headers=_bearer(wrong_metrics)), 401)


def console_pages(run: Run, device_id: str) -> None:
    for page in (
        "/admin/devices",
        f"/admin/devices/{device_id}",
        "/admin/audit",
        "/admin/mobile-app",
    ):
        response = run.admin.get(page)
        assert response.status_code == 200, f"{page}: {response.status_code}"


def sign_out(run: Run) -> None:
    qr = run.app_qr_token()
    session = run.admin.cookies["polaris_session"]
    assert run.admin.post("/api/v1/auth/logout", headers=run.csrf).status_code == 204
    with run.client() as phone:
        _refused(phone.post(APP_EXCHANGE, json=app_body(qr)), 410, "code_expired")
    with run.client(cookies={"polaris_session": session}) as old:
        _refused(old.get("/api/v1/auth/me"), 401)


def webhooks(run: Run, receiver_url: str) -> None:
    created = run.admin.post(
        "/api/v1/admin/webhooks",
        json={"url": receiver_url, "events": ["*"], "description": "canary"},
        headers=run.csrf,
    )
    assert created.status_code == 201, created.text
    secret = run.canary.add("webhook signing secret", created.json()["secret"])
    run.answers.issued(created, secret)
    endpoint = created.json()["webhookId"]
    sent = run.admin.post(f"/api/v1/admin/webhooks/{endpoint}/test", headers=run.csrf)
    assert sent.status_code == 202, sent.text
    assert run.admin.get("/api/v1/admin/webhooks").status_code == 200
    assert run.admin.get("/admin/webhooks").status_code == 200


def _eventually(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        time.sleep(0.2)


def push_every_flow(run: Run, receiver_url: str) -> str:
    """Every flow once; returns the id of a pairing session left to expire."""
    password = _value(run.canary, "admin password")
    sign_in_attempts(run, password)
    webhooks(run, receiver_url)
    left_to_expire, _ = run.mint()
    operator_account(run)
    scanned = scanned_pairing(run)
    wrong_proofs(run)
    typed = typed_pairing(run)
    refused_codes(run)
    access_token = device_runtime(run, scanned)
    bad_input(run, scanned, access_token, _value(run.canary, "console proof"))
    rotation_and_reuse(run, scanned)
    heartbeating = run.pair_by_qr()
    device_runtime(run, heartbeating)
    admin_revocation_and_deregistration(run, typed)
    admin_app(run, access_token)
    console_pages(run, heartbeating["deviceId"])
    sign_out(run)
    return str(left_to_expire["pairingSessionId"])


def after_the_jobs(
    deployment: Deployment, run: Run, left_to_expire: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Once the jobs have acted on what the flows left (the unused code expires, the device
    that beat goes offline): the audit log through the API, and the metrics."""
    with run.client() as admin:
        run.sign_in(admin, ADMIN_EMAIL, _value(run.canary, "admin password"))
        _eventually(
            lambda: admin.get(f"{SESSIONS}/{left_to_expire}").json()["state"] == "expired",
            CODE_TTL + 5,
            "the unused code expires",
        )
        job_log = (deployment.worker or deployment.server).output
        _eventually(lambda: "went_offline" in job_log(), 10, "the sweep sees a device go offline")
        events: list[dict[str, Any]] = []
        cursor: dict[str, str] = {}
        while True:
            page = admin.get(AUDIT, params={"limit": 200, **cursor})
            assert page.status_code == 200, page.text
            events += page.json()["items"]
            if page.json()["nextCursor"] is None:
                break
            cursor = {"cursor": page.json()["nextCursor"]}
        token = _value(run.canary, "metrics token")
        scraped = admin.get("/metrics", headers=_bearer(token))
        assert scraped.status_code == 200, scraped.text
        metrics = {"server /metrics": scraped.text}
    if deployment.worker is not None:
        worker_metrics = f"http://127.0.0.1:{deployment.worker.metrics_port}/metrics"
        metrics["worker /metrics"] = httpx.get(worker_metrics).text
    return events, metrics


def test_no_secret_reaches_logs_audit_rows_answers_or_metrics(
    deployment: Deployment, canary: Canary, receiver: WebhookReceiver
) -> None:
    started = time.monotonic()
    answers = Answers()
    with Run(deployment.server.url, canary, answers) as run:
        left_to_expire = push_every_flow(run, receiver.url)
        audit_events, metrics = after_the_jobs(deployment, run, left_to_expire)
        # The test event, registrations, revocations, presence: each delivered by now or soon.
        _eventually(lambda: len(receiver.deliveries) >= 5, 15, "webhook deliveries arrive")
    flows_took = time.monotonic() - started

    rows = deployment.rows()
    audit_table = next(name for name in rows if "audit" in name)
    # The jobs may audit one more transition between the two reads.
    assert len(rows[audit_table]) >= len(audit_events) > 20
    logs = {"server log": deployment.server.output()}
    if deployment.worker is not None:
        logs["worker log"] = deployment.worker.output()
    haystacks = [
        *(Haystack(name, text, lines=True) for name, text in logs.items()),
        Haystack("migrate and create-admin output", deployment.cli_output),
        *(
            Haystack(f"audit API event {e['id']} ({e['action']})", json.dumps(e))
            for e in audit_events
        ),
        *(
            Haystack(f"database table {name}", "\n".join(table), lines=True)
            for name, table in rows.items()
        ),
        *(answer.haystack() for answer in answers.answers),
        *(Haystack(name, text) for name, text in metrics.items()),
        *(Haystack(f"webhook delivery {n}", text) for n, text in enumerate(receiver.deliveries, 1)),
    ]
    if deployment.redis_url is not None:
        haystacks.append(Haystack("redis", _redis_dump(deployment.redis_url), lines=True))
    hits = canary.search(haystacks)

    log_lines = sum(text.count("\n") for text in logs.values())
    assert log_lines > 100
    assert canary.kinds >= {
        "admin password",
        "wrong password",
        "one-time code",
        "console proof",
        "device code verifier",
        "device token",
        "device secret",
        "device access token",
        "admin-app QR token",
        "admin-app access token",
        "admin-app refresh token",
        "console session id",
        "CSRF token",
        "server secret key",
        "metrics token",
        "webhook signing secret",
    }
    print(
        f"\n{deployment.backend}: {len(canary.secrets)} secrets of {len(canary.kinds)} kinds "
        f"searched across {log_lines} log lines, {len(rows[audit_table])} audit rows "
        f"(and {sum(map(len, rows.values()))} rows in {len(rows)} tables), "
        f"{len(answers.answers)} response bodies ({len(answers.errors)} errors), "
        f"{len(metrics)} metrics outputs, {len(receiver.deliveries)} webhook deliveries: "
        f"{len(hits)} hits; flows {flows_took:.1f} s"
    )
    assert not hits, "secrets found:\n" + "\n".join(map(str, hits))


def _redis_dump(url: str) -> str:
    lines: list[str] = []
    with redis.Redis.from_url(url) as connection:
        for key in connection.scan_iter(count=500):
            kind = connection.type(key).decode()
            value: object
            if kind == "string":
                value = connection.get(key)
            elif kind == "hash":
                value = connection.hgetall(key)
            elif kind == "set":
                value = connection.smembers(key)
            elif kind == "zset":
                value = connection.zrange(key, 0, -1, withscores=True)
            elif kind == "list":
                value = connection.lrange(key, 0, -1)
            else:
                value = kind
            lines.append(f"{key!r} {value!r}")
    return "\n".join(lines)


def test_the_search_finds_copies_whole_cut_lowercased_and_reformatted() -> None:
    canary = Canary()
    secret = canary.add("device secret", "pxs_" + _secret())
    token = canary.add("device token", f"pxd_0123456789abcdef_{token_urlsafe(24)}")
    code = canary.add_code("K7QXM2PD")
    haystacks = [
        Haystack(
            "the answer that hands them out",
            f"{secret} {token} {code}",
            frozenset({secret, token, code}),
        ),
        Haystack("whole", f"deviceSecret={secret}"),
        Haystack("cut", f"starts {secret[10:30]}…"),
        Haystack("lowercased", secret.lower()),
        Haystack("random part", token.removeprefix("pxd_0123456789abcdef_")),
        Haystack("code as shown", "code k7qx-m2pd"),
        Haystack("lookup id", "token pxd_0123456789abcdef_…"),
    ]
    hits = {hit.where: hit.kind for hit in canary.search(haystacks)}
    assert hits == {
        "whole": "device secret",
        "cut": "device secret",
        "lowercased": "device secret",
        "random part": "device token",
        "code as shown": "one-time code",
    }


TRACEBACK = """
import logging, os
from app.logging import configure_logging, get_logger

configure_logging(level="DEBUG", as_json=os.environ["AS_JSON"] == "1")

def refresh(refresh_token: str) -> None:
    raise RuntimeError("database went away")

for logger in (get_logger("app.api.errors"), logging.getLogger("uvicorn.error")):
    try:
        refresh(os.environ["CANARY"])
    except RuntimeError:
        logger.exception("unhandled_error")
"""


@pytest.mark.parametrize("as_json", ["1", "0"], ids=["json", "console"])
def test_a_logged_traceback_shows_no_local_values(as_json: str, tmp_path: Path) -> None:
    """A pretty traceback shows each frame's locals (structlog's console default): the
    logs' tracebacks must stay plain, or an unexpected error would print the request's
    secrets."""
    secret = _secret()
    script = tmp_path / "fails.py"
    script.write_text(TRACEBACK)
    env = base_env(tmp_path, AS_JSON=as_json, CANARY=secret)
    logged = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=REPO_ROOT, capture_output=True, text=True
    )
    # Both tracebacks are there, frames and lines, and not the value in the frame.
    assert logged.stderr.count("in refresh") == 2, logged.stderr
    assert "raise RuntimeError" in logged.stderr
    assert secret not in logged.stderr + logged.stdout
