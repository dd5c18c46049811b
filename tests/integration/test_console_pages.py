from __future__ import annotations

import httpx

from app.models.user import Role
from tests.factories import DEFAULT_PASSWORD, make_user


async def _csrf(client: httpx.AsyncClient) -> str:
    page = await client.get("/login")
    assert page.status_code == 200
    return client.cookies["polaris_csrf"]


async def test_anonymous_visitor_is_sent_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/?tab=x")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/%3Ftab%3Dx"


async def test_sign_in_page_has_security_headers_and_a_csrf_cookie(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/login")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "polaris_csrf" in client.cookies
    assert 'name="password"' in response.text


async def test_console_sign_in_form_requires_csrf(client: httpx.AsyncClient) -> None:
    await make_user(Role.ADMIN)
    await _csrf(client)
    form = {"email": "admin@example.com", "password": DEFAULT_PASSWORD, "next": "/"}
    refused = await client.post("/login", data=form)
    assert refused.status_code == 403
    assert "polaris_session" not in client.cookies


async def test_console_sign_in_and_out(client: httpx.AsyncClient) -> None:
    await make_user(Role.OPERATOR, email="ops@example.com")
    token = await _csrf(client)
    headers = {"X-CSRF-Token": token, "HX-Request": "true"}

    wrong = await client.post(
        "/login", data={"email": "ops@example.com", "password": "nope"}, headers=headers
    )
    assert wrong.status_code == 401
    assert "The email or password is incorrect." in wrong.text

    ok = await client.post(
        "/login",
        data={"email": "ops@example.com", "password": DEFAULT_PASSWORD, "next": "//evil.example"},
        headers=headers,
    )
    assert ok.status_code == 204
    assert ok.headers["hx-redirect"] == "/"  # never an open redirect
    home = await client.get("/", follow_redirects=True)
    assert str(home.url).endswith("/admin/devices")
    assert home.status_code == 200
    assert "ops@example.com" in home.text
    assert "operator" in home.text

    rotated = client.cookies["polaris_csrf"]
    assert rotated != token
    out = await client.post("/logout", headers={"X-CSRF-Token": rotated, "HX-Request": "true"})
    assert out.status_code == 204
    assert out.headers["hx-redirect"] == "/login"
    assert (await client.get("/")).status_code == 303


async def test_unknown_page_is_a_friendly_html_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-page")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "Page not found" in response.text


async def test_a_nul_character_in_a_form_or_a_search_is_refused_not_a_server_error(
    client: httpx.AsyncClient,
) -> None:
    # PostgreSQL cannot store U+0000: it must never reach the database.
    await make_user(Role.ADMIN)
    token = await _csrf(client)
    headers = {"X-CSRF-Token": token, "HX-Request": "true"}

    sign_in = await client.post(
        "/login", data={"email": "admin@\x00example.com", "password": "x"}, headers=headers
    )
    assert sign_in.status_code == 400
    assert "Enter your email and password." in sign_in.text

    signed_in = await client.post(
        "/login",
        data={"email": "admin@example.com", "password": DEFAULT_PASSWORD, "next": "/"},
        headers=headers,
    )
    assert signed_in.status_code in (200, 204, 303), signed_in.text
    search = await client.get("/admin/devices", params={"q": "dock\x00"})
    assert search.status_code == 200
