from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from app.edge.runtime import runtime
from tests.conftest import BACKEND


async def test_healthz_answers_while_the_process_is_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


async def test_readyz_checks_every_configured_backend(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    expected = {"database": True, "redis": True} if BACKEND.redis_url else {"database": True}
    assert response.json() == {"status": "ready", "checks": expected}


@pytest.mark.redis
async def test_readyz_reports_redis_down(app: Starlette, client: httpx.AsyncClient) -> None:
    from redis.asyncio import Redis

    working = runtime(app).redis
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    runtime(app).redis = unreachable
    try:
        response = await client.get("/readyz")
    finally:
        await unreachable.aclose()
        runtime(app).redis = working
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "redis": False}


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    rid = "0f0e0d0c0b0a09080706050403020100"
    response = await client.get("/healthz", headers={"X-Request-ID": rid})
    assert response.headers["x-request-id"] == rid
