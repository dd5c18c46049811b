from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from app import clock
from app.models import AuditEvent, ConsoleSession
from app.models.user import Role
from tests.factories import DEFAULT_PASSWORD, make_user, sign_in

LOGIN = "/api/v1/auth/login"


async def test_login_opens_session_with_hardened_cookies(client: httpx.AsyncClient) -> None:
    admin = await make_user(Role.ADMIN)
    response = await client.post(
        LOGIN, json={"email": "ADMIN@example.com ", "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"userId": str(admin.id), "email": admin.email, "role": "admin"}
    assert len(body["csrfToken"]) > 40
    assert response.headers["cache-control"] == "no-store"
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("polaris_session="))
    assert "HttpOnly" in session_cookie
    assert "SameSite=lax" in session_cookie
    value = session_cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43  # 256 bits, url-safe base64
    stored = await ConsoleSession.get(user_id=admin.id)
    assert value not in stored.token_hash  # only the hash is kept
    me = await client.get("/api/v1/auth/me")
    assert me.json()["user"]["email"] == "admin@example.com"


async def test_wrong_password_and_unknown_email_answer_identically(
    client: httpx.AsyncClient,
) -> None:
    await make_user(Role.ADMIN)
    wrong = await client.post(
        LOGIN, json={"email": "admin@example.com", "password": "nope-nope-nope"}
    )
    unknown = await client.post(
        LOGIN, json={"email": "ghost@example.com", "password": "nope-nope-nope"}
    )

    assert wrong.status_code == unknown.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "invalid_credentials"
    assert "polaris_session" not in wrong.headers.get("set-cookie", "")


async def test_failed_logins_are_rate_limited_per_account(client: httpx.AsyncClient) -> None:
    await make_user(Role.ADMIN)
    for _ in range(5):
        r = await client.post(
            LOGIN, json={"email": "admin@example.com", "password": "wrong-password"}
        )
        assert r.status_code == 401
    # Even the right password is refused while the account's budget is spent.
    limited = await client.post(
        LOGIN, json={"email": "admin@example.com", "password": DEFAULT_PASSWORD}
    )
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) > 0
    # An unknown account is limited the same way, so the answer reveals nothing.
    for _ in range(5):
        await client.post(LOGIN, json={"email": "ghost@example.com", "password": "wrong-password"})
    ghost = await client.post(LOGIN, json={"email": "ghost@example.com", "password": "x"})
    assert ghost.status_code == 429


async def test_failed_logins_are_rate_limited_per_ip(client: httpx.AsyncClient) -> None:
    for n in range(30):
        r = await client.post(
            LOGIN, json={"email": f"user{n}@example.com", "password": "wrong-password"}
        )
        assert r.status_code == 401
    limited = await client.post(LOGIN, json={"email": "fresh@example.com", "password": "wrong"})
    assert limited.status_code == 429


async def test_login_rotates_the_session(client: httpx.AsyncClient) -> None:
    admin = await make_user(Role.ADMIN)
    await sign_in(client, admin)
    first = client.cookies["polaris_session"]
    await sign_in(client, admin)
    second = client.cookies["polaris_session"]
    assert first != second
    client.cookies.set("polaris_session", first)
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    assert await ConsoleSession.filter(user_id=admin.id, ended_at=None).count() == 1


async def test_logout_needs_csrf_and_kills_the_session(client: httpx.AsyncClient) -> None:
    admin = await make_user(Role.ADMIN)
    signed = await sign_in(client, admin)
    cookie = client.cookies["polaris_session"]

    missing = await client.post("/api/v1/auth/logout")
    assert missing.status_code == 403
    assert missing.json()["code"] == "forbidden"
    forged = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": "forged"})
    assert forged.status_code == 403
    assert (await client.get("/api/v1/auth/me")).status_code == 200

    ok = await client.post("/api/v1/auth/logout", headers=signed.write_headers())
    assert ok.status_code == 204
    client.cookies.set("polaris_session", cookie)
    gone = await client.get("/api/v1/auth/me")
    assert gone.status_code == 401
    assert gone.json()["code"] == "not_authenticated"


async def test_session_idle_timeout(client: httpx.AsyncClient) -> None:
    admin = await make_user(Role.ADMIN)
    await sign_in(client, admin)
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/api/v1/auth/me")).status_code == 200  # activity keeps it alive
    clock.advance(timedelta(minutes=31))
    assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_session_absolute_timeout(client: httpx.AsyncClient) -> None:
    admin = await make_user(Role.ADMIN)
    await sign_in(client, admin)
    for _ in range(25):  # half-hourly activity for 12.5 hours
        clock.advance(timedelta(minutes=30) - timedelta(seconds=1))
        response = await client.get("/api/v1/auth/me")
    assert response.status_code == 401


async def test_operator_reads_but_cannot_use_admin_routes(client: httpx.AsyncClient) -> None:
    operator = await make_user(Role.OPERATOR)
    signed = await sign_in(client, operator)
    assert (await client.get("/api/v1/auth/me")).json()["user"]["role"] == "operator"
    listing = await client.get("/api/v1/admin/users")
    assert listing.status_code == 403
    assert listing.json()["code"] == "forbidden"
    create = await client.post(
        "/api/v1/admin/users",
        json={"email": "new@example.com", "password": "long-enough-password", "role": "admin"},
        headers=signed.write_headers(),
    )
    assert create.status_code == 403


async def test_role_is_read_from_the_database_on_every_request(client: httpx.AsyncClient) -> None:
    admin = await make_user(Role.ADMIN)
    await sign_in(client, admin)
    assert (await client.get("/api/v1/admin/users")).status_code == 200
    await type(admin).filter(id=admin.id).update(role=Role.OPERATOR)
    assert (await client.get("/api/v1/admin/users")).status_code == 403


async def test_admin_creates_users_and_it_is_audited(client: httpx.AsyncClient) -> None:
    admin = await make_user(Role.ADMIN)
    signed = await sign_in(client, admin)
    response = await client.post(
        "/api/v1/admin/users",
        json={"email": "ops@example.com", "password": "long-enough-password", "role": "operator"},
        headers=signed.write_headers(),
    )
    assert response.status_code == 201
    assert response.json()["user"]["role"] == "operator"
    duplicate = await client.post(
        "/api/v1/admin/users",
        json={"email": "OPS@example.com", "password": "long-enough-password", "role": "operator"},
        headers=signed.write_headers(),
    )
    assert duplicate.status_code == 409
    events = await AuditEvent.filter(action="user.created", actor_id=str(admin.id))
    assert len(events) == 1
    assert events[0].metadata == {"email": "ops@example.com", "role": "operator"}
    assert "long-enough-password" not in str(events[0].metadata)


async def test_anonymous_api_calls_get_401(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/auth/me", "/api/v1/admin/users"):
        response = await client.get(path)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        (
            {
                "content": b"email=a&password=b",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            415,
            "unsupported_media_type",
        ),
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "validation_error",
        ),
        ({"json": {"email": "a@example.com"}}, 400, "validation_error"),
        (
            {"json": {"email": "a@example.com", "password": "x", "admin": True}},
            400,
            "validation_error",
        ),
        ({"json": {"email": 5, "password": ["x"]}}, 400, "validation_error"),
        ({"json": ["a@example.com", "x"]}, 400, "validation_error"),
        ({"json": {"email": "a@example.com", "password": "x" * 20_000}}, 413, "payload_too_large"),
    ],
    ids=[
        "form-encoded",
        "malformed-json",
        "missing-field",
        "unknown-field",
        "wrong-types",
        "array",
        "oversized",
    ],
)
async def test_login_rejects_bad_input_with_problem_json(
    client: httpx.AsyncClient, kwargs: dict[str, object], status: int, code: str
) -> None:
    response = await client.post(LOGIN, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert "Traceback" not in response.text


async def test_validation_errors_name_the_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(LOGIN, json={"email": "a@example.com", "pasword": "typo"})
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"password", "pasword"}


async def test_cross_site_login_is_refused(client: httpx.AsyncClient) -> None:
    admin = await make_user(Role.ADMIN)
    response = await client.post(
        LOGIN,
        json={"email": admin.email, "password": DEFAULT_PASSWORD},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 403


async def test_unknown_api_path_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    wrong_method = await client.delete(LOGIN)
    assert wrong_method.status_code == 405
