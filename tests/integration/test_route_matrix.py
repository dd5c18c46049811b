"""The console's promises, checked over every route the router has (DESIGN §8): who may call
what, CSRF on every state change, the cookies' attributes, a new session id at sign-in, the
security headers, and `no-store` wherever a code or a QR code is shown.

The routes come from the app's router, so a route added without a line in `ACCESS` fails
`test_every_route_has_an_expectation` and its own matrix case.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from http.cookies import SimpleCookie
from typing import Any
from uuid import uuid4

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from app.auth.csrf import new_csrf_token
from app.edge.cookies import CSRF_COOKIE, SESSION_COOKIE
from app.main import API_PREFIXES, GROUPS
from app.models import Kind, PairingSession, WebhookEndpoint
from app.models.user import Role
from app.services import audit
from app.settings import Environment, Settings
from simulator.admin import APP_EXCHANGE, LOGIN, PAIRING_SESSIONS
from simulator.protocol import HEARTBEAT, POLL, REGISTER, ROTATE, TOKEN, PkcePair
from tests.admin_phone import app_body, connect, generate, refresh
from tests.factories import DEFAULT_PASSWORD, SignedInClient, make_user, pair_scanner, sign_in
from tests.scanner import bearer, poll_body, scan_body, typed_body
from tests.wire import assert_problem

RouteKey = tuple[str, str]
ROLES = ("anonymous", "operator", "admin")
# Starlette answers HEAD on every GET route with the GET endpoint itself.
IMPLIED_METHODS = {"HEAD"}
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
CSRF_REFUSAL = "Missing or invalid CSRF token (X-CSRF-Token header)."


def walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[RouteKey]:
    """(method, path template) of every endpoint, Mounts followed; anything else fails."""
    for route in routes:
        if isinstance(route, Mount) and route.routes:
            yield from walk(route.routes, prefix + route.path)
        elif isinstance(route, Mount):
            # A mounted app (static files) serves GET below its path.
            yield "GET", f"{prefix}{route.path}/{{path}}"
        elif isinstance(route, Route):
            for method in sorted((route.methods or set()) - IMPLIED_METHODS):
                yield method, prefix + route.path
        else:
            raise TypeError(f"no rule for {type(route).__name__} at {prefix}")


ROUTES = sorted(walk([route for group in GROUPS for route in group.mounted()]))


class Expect(Enum):
    ALLOWED = "let through: not 401/403, not sent to sign in"
    SIGN_IN = "303 to /login?next=<path>"
    NOT_AUTHENTICATED = "401 not_authenticated"
    FORBIDDEN = "403 forbidden (problem+json on the API, the error page on the console)"
    DEVICE_CREDENTIALS = "refused without device credentials (400 or 401 problem+json)"
    SAME_AS_ANONYMOUS = "the console session changes nothing: anonymous's answer"


@dataclass(frozen=True)
class Access:
    kind: str
    anonymous: Expect
    operator: Expect
    admin: Expect
    # Path parameter → the id `World` fills it with.
    ids: Mapping[str, str] = field(default_factory=dict)
    # Device clients and token exchanges carry no cookie: CSRF leaves them alone.
    csrf_exempt: bool = False

    def expect(self, role: str) -> Expect:
        expected: Expect = getattr(self, role)
        return expected


ALLOWED, SIGN_IN, FORBIDDEN = Expect.ALLOWED, Expect.SIGN_IN, Expect.FORBIDDEN
PUBLIC = Access("public", ALLOWED, ALLOWED, ALLOWED)
SIGN_IN_FORMS = Access("sign-in", ALLOWED, ALLOWED, ALLOWED)
PAGE_READ = Access("page", SIGN_IN, ALLOWED, ALLOWED)
PAGE_ADMIN = Access("page", SIGN_IN, FORBIDDEN, ALLOWED)
API_READ = Access("api", Expect.NOT_AUTHENTICATED, ALLOWED, ALLOWED)
API_ADMIN = Access("api", Expect.NOT_AUTHENTICATED, FORBIDDEN, ALLOWED)
DEVICE = Access(
    "device",
    Expect.DEVICE_CREDENTIALS,
    Expect.SAME_AS_ANONYMOUS,
    Expect.SAME_AS_ANONYMOUS,
    csrf_exempt=True,
)
SCANNER = {"device_id": "scanner_device", "token_id": "scanner_token"}
PAIRING = {"session_id": "pairing_session"}
APP_DEVICE = {"device_id": "app_device"}
APP_QR = {"session_id": "app_qr_session"}
WEBHOOK = {"endpoint_id": "webhook_endpoint"}
API_WEBHOOK = {"webhook_id": "webhook_endpoint"}
# A literal public address: accepted without a lookup, and never sent to (no scheduler here).
WEBHOOK_URL = "https://93.184.215.14/polaris"


def _with(access: Access, ids: Mapping[str, str], **changes: Any) -> Access:
    return replace(access, ids=ids, **changes)


ACCESS: dict[RouteKey, Access] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    # Development mode without METRICS_TOKEN; the token's own rules are in test_metrics.
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/.well-known/jwks.json"): PUBLIC,
    ("GET", "/static/{path}"): _with(PUBLIC, {"path": "static_file"}),
    ("POST", "/api/devices/register"): DEVICE,
    ("POST", "/api/devices/register/poll"): DEVICE,
    ("POST", "/api/devices/token"): DEVICE,
    ("POST", "/api/devices/heartbeat"): DEVICE,
    ("PUT", "/api/devices/push-token"): DEVICE,
    ("POST", "/api/devices/credentials/rotate"): DEVICE,
    ("POST", "/api/v1/auth/login"): _with(SIGN_IN_FORMS, {}, csrf_exempt=True),
    ("POST", "/api/v1/auth/logout"): API_READ,
    ("GET", "/api/v1/auth/me"): API_READ,
    ("GET", "/api/v1/admin/users"): API_ADMIN,
    ("POST", "/api/v1/admin/users"): API_ADMIN,
    ("POST", "/api/v1/admin/pairing-sessions"): API_ADMIN,
    ("GET", "/api/v1/admin/pairing-sessions/{session_id:uuid}"): _with(API_READ, PAIRING),
    ("DELETE", "/api/v1/admin/pairing-sessions/{session_id:uuid}"): _with(API_ADMIN, PAIRING),
    ("POST", "/api/v1/admin/pairing-sessions/{session_id:uuid}/approve"): _with(API_ADMIN, PAIRING),
    ("POST", "/api/v1/admin/pairing-sessions/{session_id:uuid}/reject"): _with(API_ADMIN, PAIRING),
    ("GET", "/api/v1/admin/devices"): API_READ,
    ("GET", "/api/v1/admin/fleet/summary"): API_READ,
    ("GET", "/api/v1/admin/devices/{device_id:uuid}"): _with(API_READ, SCANNER),
    ("DELETE", "/api/v1/admin/devices/{device_id:uuid}"): _with(API_ADMIN, SCANNER),
    ("POST", "/api/v1/admin/devices/{device_id:uuid}/tokens/{token_id:uuid}/revoke"): _with(
        API_ADMIN, SCANNER
    ),
    ("GET", "/api/v1/admin/audit"): API_READ,
    ("POST", "/api/v1/admin/app/generate-qr"): API_ADMIN,
    # The admin app before it holds an access token: its QR token or refresh token is all.
    ("POST", "/api/v1/admin/app/exchange-token"): _with(DEVICE, {}, kind="admin app"),
    ("POST", "/api/v1/admin/app/refresh"): _with(DEVICE, {}, kind="admin app"),
    ("GET", "/api/v1/admin/app/devices"): API_READ,
    ("DELETE", "/api/v1/admin/app/devices/{device_id:uuid}"): _with(API_ADMIN, APP_DEVICE),
    ("GET", "/api/v1/admin/webhooks"): API_READ,
    ("POST", "/api/v1/admin/webhooks"): API_ADMIN,
    ("DELETE", "/api/v1/admin/webhooks/{webhook_id:uuid}"): _with(API_ADMIN, API_WEBHOOK),
    ("POST", "/api/v1/admin/webhooks/{webhook_id:uuid}/test"): _with(API_ADMIN, API_WEBHOOK),
    ("GET", "/api/v1/admin/webhooks/{webhook_id:uuid}/deliveries"): _with(API_READ, API_WEBHOOK),
    ("GET", "/login"): SIGN_IN_FORMS,
    ("POST", "/login"): SIGN_IN_FORMS,
    ("POST", "/logout"): SIGN_IN_FORMS,
    ("GET", "/"): PAGE_READ,
    ("GET", "/admin/devices"): PAGE_READ,
    ("GET", "/admin/devices/{device_id:uuid}"): _with(PAGE_READ, SCANNER),
    ("POST", "/admin/devices/{device_id:uuid}/deregister"): _with(PAGE_ADMIN, SCANNER),
    ("POST", "/admin/devices/{device_id:uuid}/tokens/{token_id:uuid}/revoke"): _with(
        PAGE_ADMIN, SCANNER
    ),
    ("POST", "/admin/devices/register"): PAGE_ADMIN,
    ("GET", "/admin/pairing/{session_id:uuid}"): _with(PAGE_READ, PAIRING),
    ("POST", "/admin/pairing/{session_id:uuid}/approve"): _with(PAGE_ADMIN, PAIRING),
    ("POST", "/admin/pairing/{session_id:uuid}/reject"): _with(PAGE_ADMIN, PAIRING),
    ("POST", "/admin/pairing/{session_id:uuid}/cancel"): _with(PAGE_ADMIN, PAIRING),
    ("GET", "/admin/audit"): PAGE_READ,
    ("GET", "/admin/mobile-app"): PAGE_READ,
    ("GET", "/admin/mobile-app/devices"): PAGE_READ,
    ("POST", "/admin/mobile-app/devices/{device_id:uuid}/revoke"): _with(PAGE_ADMIN, APP_DEVICE),
    ("POST", "/admin/mobile-app/qr"): PAGE_ADMIN,
    # Reading a QR code's state is an admin's: it tells whether a phone just connected.
    ("GET", "/admin/mobile-app/qr/{session_id:uuid}"): _with(PAGE_ADMIN, APP_QR),
    ("POST", "/admin/mobile-app/qr/{session_id:uuid}/cancel"): _with(PAGE_ADMIN, APP_QR),
    ("GET", "/admin/webhooks"): PAGE_READ,
    ("POST", "/admin/webhooks"): PAGE_ADMIN,
    ("GET", "/admin/webhooks/{endpoint_id:uuid}"): _with(PAGE_READ, WEBHOOK),
    ("POST", "/admin/webhooks/{endpoint_id:uuid}/test"): _with(PAGE_ADMIN, WEBHOOK),
    ("POST", "/admin/webhooks/{endpoint_id:uuid}/remove"): _with(PAGE_ADMIN, WEBHOOK),
}


def route_id(route: RouteKey) -> str:
    return f"{route[0]} {route[1]}"


def is_api(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def fill(template: str, ids: Mapping[str, str], chosen: Mapping[str, str]) -> str:
    """The template's parameters as `chosen` names them, random UUIDs for the rest."""
    return PARAM.sub(lambda m: ids.get(chosen.get(m.group(1), ""), str(uuid4())), template)


SECURITY_HEADERS = {
    "content-security-policy": "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def missing_security_headers(response: httpx.Response) -> list[str]:
    return [
        name
        for name, needle in SECURITY_HEADERS.items()
        if needle not in response.headers.get(name, "")
    ]


def assert_security_headers(response: httpx.Response) -> None:
    missing = missing_security_headers(response)
    assert not missing, f"{response.request.method} {response.url.path}: {missing}"


def assert_no_store(response: httpx.Response) -> None:
    path = f"{response.request.method} {response.url.path}"
    assert response.status_code < 300, f"{path}: {response.status_code} {response.text}"
    assert response.headers.get("cache-control") == "no-store", path


# --- the world a route's ids come from -------------------------------------------------------


@dataclass(frozen=True)
class Callers:
    anonymous: httpx.AsyncClient
    operator: SignedInClient
    admin: SignedInClient

    async def send(self, role: str, method: str, path: str) -> httpx.Response:
        if role == "anonymous":
            client = self.anonymous
            headers = {"X-CSRF-Token": client.cookies[CSRF_COOKIE]}
        else:
            signed_in: SignedInClient = getattr(self, role)
            client, headers = signed_in.client, signed_in.write_headers()
        body: dict[str, Any] | None = {} if method in STATE_CHANGING else None
        return await client.request(method, path, headers=headers, json=body)


async def _client(app: Starlette, **options: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000), **options)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def callers(app: Starlette, admin: SignedInClient) -> AsyncIterator[Callers]:
    async with await _client(app) as anonymous, await _client(app) as operator_client:
        # Every caller sends a valid CSRF token: the matrix is about the guards alone.
        assert (await anonymous.get("/login")).status_code == 200
        operator = await sign_in(operator_client, await make_user(Role.OPERATOR))
        yield Callers(anonymous, operator, admin)


async def world(admin: SignedInClient, device_client: httpx.AsyncClient) -> dict[str, str]:
    """Real ids for every kind of path parameter, all made by `admin`."""
    scanner = await pair_scanner(admin, device_client)
    detail = await admin.api.device(scanner.device_id)
    phone = await connect(admin, device_client)
    await generate(admin)
    app_qr = await PairingSession.filter(kind=Kind.ADMIN_APP, state="minted").get()
    webhook = await admin.client.post(
        "/admin/webhooks",
        data={"url": WEBHOOK_URL, "events": "*"},
        headers=admin.write_headers(),
    )
    assert webhook.status_code == 200, webhook.text
    return {
        "scanner_device": scanner.device_id,
        "scanner_token": detail["tokens"][0]["tokenId"],
        "pairing_session": (await admin.api.mint_code()).pairing_session_id,
        "app_device": phone.device_id,
        "app_qr_session": str(app_qr.id),
        "webhook_endpoint": str((await WebhookEndpoint.get(url=WEBHOOK_URL)).id),
        "static_file": "console.css",
    }


# --- the role x route matrix -----------------------------------------------------------------


def verdict(
    expected: Expect, response: httpx.Response, anonymous: httpx.Response | None
) -> str | None:
    """What is wrong with `response`, or None."""
    status, location = response.status_code, response.headers.get("location", "")
    problem = problem_body(response)
    match expected:
        case Expect.ALLOWED:
            refused = status in (401, 403, 404) or status >= 500 or location.startswith("/login")
            return f"refused: {status} {location}" if refused else None
        case Expect.SIGN_IN:
            sent = status == 303 and location.startswith("/login?next=/")
            return None if sent else f"{status} {location}"
        case Expect.NOT_AUTHENTICATED:
            ok = status == 401 and problem.get("code") == "not_authenticated"
            return None if ok else f"{status} {response.text[:120]}"
        case Expect.FORBIDDEN:
            return _forbidden(response, problem)
        case Expect.DEVICE_CREDENTIALS:
            return None if status in (400, 401) and problem else f"{status} {response.text[:120]}"
        case Expect.SAME_AS_ANONYMOUS:
            assert anonymous is not None
            theirs = (anonymous.status_code, problem_body(anonymous).get("code"))
            same = (status, problem.get("code")) == theirs
            return None if same else f"{status} {problem}, anonymous got {theirs}"


def problem_body(response: httpx.Response) -> dict[str, Any]:
    if "problem+json" not in response.headers.get("content-type", ""):
        return {}
    body: dict[str, Any] = response.json()
    return body


def _forbidden(response: httpx.Response, problem: dict[str, Any]) -> str | None:
    if response.status_code != 403:
        return f"{response.status_code} {response.text[:120]}"
    if is_api(response.url.path):
        return None if problem.get("code") == "forbidden" else f"not a problem: {problem}"
    page = "text/html" in response.headers["content-type"] and "Not allowed" in response.text
    return None if page else "not the error page"


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
async def test_role_matrix(
    route: RouteKey, callers: Callers, device_client: httpx.AsyncClient
) -> None:
    assert route in ACCESS, f"{route_id(route)} has no line in ACCESS"
    method, template = route
    access = ACCESS[route]
    path = fill(template, await world(callers.admin, device_client), access.ids)
    wrong: list[str] = []
    anonymous = None
    # Anonymous first, admin last: the admin's writes are the only ones that can succeed.
    for role in ROLES:
        response = await callers.send(role, method, path)
        if role == "anonymous":
            anonymous = response
        if problem := verdict(access.expect(role), response, anonymous):
            wrong.append(f"{role}: expected {access.expect(role).value}, got {problem}")
        if missing := missing_security_headers(response):
            wrong.append(f"{role}: security headers missing: {missing}")
    assert not wrong, f"{method} {path}\n" + "\n".join(wrong)


async def test_every_route_has_an_expectation(app: Starlette) -> None:
    served = set(walk(app.routes))
    assert sorted(served - ACCESS.keys()) == [], "routes without a line in ACCESS"
    assert sorted(ACCESS.keys() - served) == [], "lines in ACCESS for routes that are gone"
    assert served == set(ROUTES)


# --- CSRF --------------------------------------------------------------------------------------

_EXEMPT = [re.compile(p) for group in GROUPS for p in group.csrf_exempt_paths()]
_REQUIRED = [re.compile(p) for group in GROUPS for p in group.csrf_required_paths()]
STATE_CHANGES = [route for route in ROUTES if route[0] in STATE_CHANGING]


def declared_exempt(route: RouteKey) -> bool:
    """What the RouteGroup declarations leave to no CSRF check (as ConsoleCSRFMiddleware)."""
    path = fill(route[1], {}, {})
    return any(p.match(path) for p in _EXEMPT) and not any(p.match(path) for p in _REQUIRED)


def test_the_csrf_exemptions_are_exactly_the_cookieless_routes() -> None:
    exempt = {route for route in STATE_CHANGES if declared_exempt(route)}
    expected = {route for route, access in ACCESS.items() if access.csrf_exempt}
    assert sorted(exempt) == sorted(expected)
    # And none is reached by a console page.
    assert all(is_api(path) for _, path in exempt)


def test_sign_in_form_is_the_one_route_checked_without_a_session() -> None:
    required = {r for r in STATE_CHANGES if any(p.match(fill(r[1], {}, {})) for p in _REQUIRED)}
    assert required == {("POST", "/login")}


@pytest.mark.parametrize(
    "route", [r for r in STATE_CHANGES if not declared_exempt(r)], ids=route_id
)
async def test_a_state_change_with_the_session_cookie_needs_the_csrf_header(
    route: RouteKey, admin: SignedInClient, settings: Settings
) -> None:
    method, template = route
    path = fill(template, {}, {})
    missing = await admin.client.request(method, path, json={})
    # A token of the right form, but not the one in this browser's cookie.
    foreign = await admin.client.request(
        method, path, json={}, headers={"X-CSRF-Token": new_csrf_token(settings.secret)}
    )
    for refused in (missing, foreign):
        assert_problem(refused, 403, "forbidden")
        assert refused.json()["detail"] == CSRF_REFUSAL
        assert_security_headers(refused)
    # Still signed in: nothing above reached a route.
    assert (await admin.client.get("/api/v1/auth/me")).status_code == 200


@pytest.mark.parametrize("route", [r for r in STATE_CHANGES if declared_exempt(r)], ids=route_id)
async def test_an_exempt_route_is_not_refused_for_csrf(
    route: RouteKey, admin: SignedInClient
) -> None:
    answer = await admin.client.request(route[0], fill(route[1], {}, {}), json={})
    assert answer.status_code != 403 or answer.json()["detail"] != CSRF_REFUSAL


async def test_the_sign_in_form_needs_the_csrf_header_without_a_session(
    client: httpx.AsyncClient,
) -> None:
    await make_user(Role.ADMIN)
    assert (await client.get("/login")).status_code == 200
    form = {"email": "admin@example.com", "password": DEFAULT_PASSWORD}
    refused = await client.post("/login", data=form)
    assert_problem(refused, 403, "forbidden")
    assert SESSION_COOKIE not in client.cookies


# --- cookies -----------------------------------------------------------------------------------

SECURE_SETTINGS = {
    "http": ({}, False),
    "https": ({"public_base_url": "https://polaris.example"}, True),
    "production": ({"environment": Environment.PRODUCTION}, True),
}


def cookie_attributes(response: httpx.Response, name: str) -> dict[str, str | bool]:
    """The attributes of the Set-Cookie for `name`, lower-case, flags as True."""
    for header in response.headers.get_list("set-cookie"):
        parsed: SimpleCookie = SimpleCookie(header)
        if name in parsed:
            morsel = parsed[name]
            attributes: dict[str, str | bool] = {k: v for k, v in morsel.items() if v}
            return {**attributes, "value": morsel.value}
    raise AssertionError(f"no Set-Cookie for {name} in {response.headers.get_list('set-cookie')}")


def assert_cookie(
    attributes: Mapping[str, str | bool], *, httponly: bool, secure: bool, name: str
) -> None:
    assert bool(attributes.get("httponly")) is httponly, (name, attributes)
    assert bool(attributes.get("secure")) is secure, (name, attributes)
    assert str(attributes.get("samesite", "")).lower() == "lax", (name, attributes)
    assert attributes.get("path") == "/", (name, attributes)


@pytest.mark.parametrize(
    ("settings", "secure"),
    list(SECURE_SETTINGS.values()),
    ids=list(SECURE_SETTINGS),
    indirect=["settings"],
)
async def test_session_and_csrf_cookies_carry_their_attributes(
    app: Starlette, secure: bool
) -> None:
    user = await make_user(Role.ADMIN)
    scheme = "https" if secure else "http"
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://testserver") as c:
        page = await c.get("/login")
        # The first cookie, set by starlette-csrf on the sign-in page.
        first = cookie_attributes(page, CSRF_COOKIE)
        assert_cookie(first, httponly=False, secure=secure, name="csrf on the first page")
        headers = {"X-CSRF-Token": c.cookies[CSRF_COOKIE]}
        form = {"email": user.email, "password": DEFAULT_PASSWORD}
        by_form = await c.post("/login", data=form, headers=headers)
        by_api = await c.post(LOGIN, json=form)
        for signed_in in (by_form, by_api):
            assert signed_in.status_code in (200, 204), signed_in.text
            session = cookie_attributes(signed_in, SESSION_COOKIE)
            assert_cookie(session, httponly=True, secure=secure, name="session")
            # Readable by the console's script, which echoes it in X-CSRF-Token.
            csrf = cookie_attributes(signed_in, CSRF_COOKIE)
            assert_cookie(csrf, httponly=False, secure=secure, name="csrf at sign-in")
            assert csrf["value"] != first["value"]
        out = await c.post("/logout", headers={"X-CSRF-Token": c.cookies[CSRF_COOKIE]})
        cleared = cookie_attributes(out, SESSION_COOKIE)
        assert_cookie(cleared, httponly=True, secure=secure, name="cleared session")
        assert cleared["max-age"] == "0"


# --- session rotation at sign-in ---------------------------------------------------------------


async def _sign_in_by(how: str, client: httpx.AsyncClient, email: str) -> httpx.Response:
    form = {"email": email, "password": DEFAULT_PASSWORD}
    if how == "api":
        return await client.post(LOGIN, json=form)
    if CSRF_COOKIE not in client.cookies:
        await client.get("/login")
    return await client.post(
        "/login", data=form, headers={"X-CSRF-Token": client.cookies[CSRF_COOKIE]}
    )


async def _who(app: Starlette, session_cookie: str) -> int | str:
    """The email the session cookie alone signs in as, or the status when it does not."""
    async with await _client(app) as c:
        c.cookies.set(SESSION_COOKIE, session_cookie)
        me = await c.get("/api/v1/auth/me")
        return str(me.json()["user"]["email"]) if me.status_code == 200 else me.status_code


@pytest.mark.parametrize("how", ["api", "form"])
async def test_sign_in_never_adopts_a_planted_session_cookie(
    how: str, app: Starlette, client: httpx.AsyncClient
) -> None:
    admin = await make_user(Role.ADMIN)
    planted = "attacker-chosen-" + "x" * 43
    client.cookies.set(SESSION_COOKIE, planted)
    signed_in = await _sign_in_by(how, client, admin.email)
    issued = cookie_attributes(signed_in, SESSION_COOKIE)["value"]
    assert issued != planted
    assert await _who(app, planted) == 401
    assert await _who(app, str(issued)) == admin.email


@pytest.mark.parametrize("how", ["api", "form"])
async def test_sign_in_rotates_a_live_session_and_ends_the_old_one(
    how: str, app: Starlette, client: httpx.AsyncClient
) -> None:
    """Session fixation: a session of the attacker's own, planted in a browser, must not
    become the victim's when the victim signs in there."""
    attacker = await make_user(Role.OPERATOR, email="attacker@example.com")
    victim = await make_user(Role.ADMIN, email="victim@example.com")
    before = cookie_attributes(await _sign_in_by(how, client, attacker.email), SESSION_COOKIE)
    assert await _who(app, str(before["value"])) == attacker.email

    after = cookie_attributes(await _sign_in_by(how, client, victim.email), SESSION_COOKIE)
    assert after["value"] != before["value"]
    assert await _who(app, str(before["value"])) == 401
    assert await _who(app, str(after["value"])) == victim.email


# --- security headers on answers the matrix does not reach -------------------------------------


async def test_error_answers_carry_the_security_headers(
    app: Starlette, admin: SignedInClient, settings: Settings
) -> None:
    write = admin.write_headers()
    answers = [
        await admin.client.get("/no-such-page"),
        await admin.client.get("/api/v1/admin/no-such-resource"),
        await admin.client.get("/api/devices/register"),  # 405
        await admin.client.post(
            "/api/v1/admin/users", content=b"x" * (settings.max_request_bytes + 1), headers=write
        ),
        await admin.client.post(
            "/api/v1/admin/users", content=b"<x/>", headers={**write, "Content-Type": "text/xml"}
        ),
        await admin.client.post("/api/v1/admin/pairing-sessions"),  # no CSRF header
        await admin.client.get("/admin/devices/not-a-uuid"),
    ]
    assert [a.status_code for a in answers] == [404, 404, 405, 413, 415, 403, 404]
    for answer in answers:
        assert_security_headers(answer)


async def test_an_unexpected_error_answers_with_the_security_headers(
    app: Starlette, admin: SignedInClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(**_: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(audit, "list_events", broken)
    # Starlette answers an unhandled error from its outermost layer, then re-raises it.
    async with await _client(app, raise_app_exceptions=False) as c:
        c.cookies.update(admin.client.cookies)
        page, api = await c.get("/admin/audit"), await c.get("/api/v1/admin/audit")
    assert page.status_code == 500
    assert "text/html" in page.headers["content-type"]
    assert_problem(api, 500, "internal_error")
    for answer in (page, api):
        assert "boom" not in answer.text
        assert_security_headers(answer)


@pytest.mark.parametrize("settings", [{"heartbeats_per_device": "1/minute"}], indirect=True)
async def test_heartbeat_fast_path_answers_carry_the_security_headers(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    credentials = await pair_scanner(admin, device_client)
    token = (await device_client.post(TOKEN, json=credentials.wire())).json()["accessToken"]
    routed = await device_client.post(HEARTBEAT, json={}, headers=bearer(token))
    # The token is known now: this one is answered (and refused) by the fast path.
    fast_refusal = await device_client.post(HEARTBEAT, json={}, headers=bearer(token))
    unauthenticated = await device_client.post(HEARTBEAT, json={})
    assert [routed.status_code, fast_refusal.status_code, unauthenticated.status_code] == [
        200,
        429,
        401,
    ]
    for answer in (routed, fast_refusal, unauthenticated):
        assert_security_headers(answer)


async def test_heartbeat_fast_path_success_carries_the_security_headers(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    credentials = await pair_scanner(admin, device_client)
    token = (await device_client.post(TOKEN, json=credentials.wire())).json()["accessToken"]
    answers = [await device_client.post(HEARTBEAT, json={}, headers=bearer(token)) for _ in "ab"]
    assert [a.status_code for a in answers] == [200, 200]
    for answer in answers:
        assert_security_headers(answer)


# --- no-store wherever a code, a QR code or a credential is shown ------------------------------


async def test_console_pages_that_show_codes_or_qr_codes_are_not_stored(
    admin: SignedInClient,
) -> None:
    c, write = admin.client, {**admin.write_headers(), "HX-Request": "true"}
    dialog = await c.post("/admin/devices/register", headers=write)
    session_id = re.search(r"/admin/pairing/([0-9a-f-]{36})", dialog.text)
    assert session_id is not None, dialog.text
    qr_card = await c.post("/admin/mobile-app/qr", headers=write)
    qr_id = re.search(r"/admin/mobile-app/qr/([0-9a-f-]{36})", qr_card.text)
    assert qr_id is not None, qr_card.text
    for answer in (
        dialog,
        await c.get(f"/admin/pairing/{session_id.group(1)}"),
        await c.get("/admin/mobile-app"),
        qr_card,
        await c.get(f"/admin/mobile-app/qr/{qr_id.group(1)}"),
    ):
        assert_no_store(answer)


async def test_api_answers_that_carry_codes_or_secrets_are_not_stored(
    app: Starlette, admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    c, write = admin.client, admin.write_headers()
    minted = await c.post(PAIRING_SESSIONS, headers=write)
    scanned = await device_client.post(REGISTER, json=scan_body(minted.json()["pairingUri"]))
    credentials = scanned.json()
    access = await device_client.post(
        TOKEN, json={k: credentials[k] for k in ("deviceToken", "deviceSecret")}
    )
    rotated = await device_client.post(
        ROTATE, json={k: credentials[k] for k in ("deviceToken", "deviceSecret")}
    )
    typed_code = (await c.post(PAIRING_SESSIONS, headers=write)).json()["code"]
    pkce = PkcePair.generate()
    pending = await device_client.post(REGISTER, json=typed_body(typed_code, pkce=pkce))
    qr = await c.post("/api/v1/admin/app/generate-qr", headers=write)
    exchanged = await device_client.post(APP_EXCHANGE, json=app_body(qr.json()["payload"]["token"]))
    async with await _client(app) as fresh:
        await make_user(Role.OPERATOR)
        login = await fresh.post(
            LOGIN, json={"email": "operator@example.com", "password": DEFAULT_PASSWORD}
        )
    for answer in (
        minted,
        await c.get(f"{PAIRING_SESSIONS}/{minted.json()['pairingSessionId']}"),
        scanned,
        pending,
        access,
        rotated,
        qr,
        exchanged,
        await refresh(device_client, exchanged.json()["refreshToken"]),
        login,
    ):
        assert_no_store(answer)
    assert pending.status_code == 202
    approved = await c.post(
        f"{PAIRING_SESSIONS}/{pending.json()['pairingId']}/approve", json={}, headers=write
    )
    assert approved.status_code == 200, approved.text
    assert_no_store(
        await device_client.post(POLL, json=poll_body(pending.json()["pairingId"], pkce))
    )
