"""A server whose Redis is unreachable: revoked stays revoked, the rest degrades clearly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.models.user import Role
from app.settings import Settings
from simulator.protocol import DeviceApi
from tests.factories import make_user, pair_scanner, sign_in
from tests.scanner import heartbeat

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.40", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_revoked_credentials_stay_dead_while_redis_is_down(settings: Settings) -> None:
    healthy = settings.model_copy(update={"redis_url": None})
    async with _serving(healthy) as client:
        admin = await sign_in(client, await make_user(Role.ADMIN, email="redis-down@example.com"))
        kept = await pair_scanner(admin, client)
        lost = await pair_scanner(admin, client)
        kept_token = (await DeviceApi(client).access_token(kept)).token
        lost_token = (await DeviceApi(client).access_token(lost)).token
        deregistered = await client.delete(
            f"/api/v1/admin/devices/{lost.device_id}", headers=admin.write_headers()
        )
        assert deregistered.status_code == 204

    broken = settings.model_copy(update={"redis_url": UNREACHABLE_REDIS})
    async with _serving(broken) as client:
        # The revocation channel never came up, so this server asks the database.
        refused = await heartbeat(client, lost_token)
        assert (refused.status_code, refused.json()["code"]) == (401, "token_revoked")
        assert (await heartbeat(client, kept_token)).status_code == 200

        # Budgets kept in Redis cannot be counted: a clear 503, never an uncounted attempt.
        login = await client.post(
            "/api/v1/auth/login", json={"email": "redis-down@example.com", "password": "x" * 12}
        )
        assert login.status_code == 503
        assert login.json()["code"] == "unavailable"
        assert login.headers["retry-after"] == "5"
        ready = await client.get("/readyz")
        assert ready.status_code == 503


async def test_the_console_answers_a_clear_503_page_while_redis_is_down(
    settings: Settings,
) -> None:
    broken = settings.model_copy(update={"redis_url": UNREACHABLE_REDIS})
    async with _serving(broken) as client:
        await make_user(Role.ADMIN, email="console-redis-down@example.com")
        assert (await client.get("/login")).status_code == 200
        form = {
            "email": "console-redis-down@example.com",
            "password": "x" * 12,
            "next": "/",
        }

        page = await client.post(
            "/login", data=form, headers={"X-CSRF-Token": client.cookies["polaris_csrf"]}
        )

        assert page.status_code == 503
        assert "text/html" in page.headers["content-type"]
        assert "Temporarily unavailable" in page.text
        assert "Traceback" not in page.text
