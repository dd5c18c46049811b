"""Fixtures the integration tests share: a signed-in admin, the devices it paired, their clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette

from app import clock
from app.edge.runtime import runtime
from app.models.user import Role
from app.presence.redis import RedisPresenceStore
from app.settings import Settings
from simulator.admin import AdminAppTokens
from simulator.protocol import Credentials, DeviceApi
from tests.admin_phone import connect
from tests.factories import (
    EndCredentials,
    PairScanner,
    SignedInClient,
    make_user,
    pair_scanner,
    sign_in,
)


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> SignedInClient:
    return await sign_in(client, await make_user(Role.ADMIN))


@pytest.fixture
def device_api(device_client: httpx.AsyncClient) -> DeviceApi:
    """The simulator's wire client, as a scanner app in the field talks to the server."""
    return DeviceApi(device_client)


@pytest.fixture
def pair(admin: SignedInClient, device_client: httpx.AsyncClient) -> PairScanner:
    """Another scanner, paired by the signed-in admin."""

    async def paired() -> Credentials:
        return await pair_scanner(admin, device_client)

    return paired


@pytest.fixture
async def device(pair: PairScanner) -> Credentials:
    return await pair()


@pytest.fixture
async def access_token(device_api: DeviceApi, device: Credentials) -> str:
    """A fresh access token of the paired `device`."""
    return (await device_api.access_token(device)).token


@pytest.fixture(params=["revoked-by-admin", "rotated", "device-deregistered"])
def end_credentials(
    request: pytest.FixtureRequest,
    admin: SignedInClient,
    device_api: DeviceApi,
    device: Credentials,
    settings: Settings,
) -> EndCredentials:
    """Each way the `device`'s credentials can end, one per parameter."""

    async def revoke_by_admin() -> None:
        detail = await admin.api.device(device.device_id)
        active = next(t for t in detail["tokens"] if t["state"] == "active")
        await admin.api.revoke_token(device.device_id, active["tokenId"])

    async def rotate() -> None:
        await device_api.rotate(device)
        clock.advance(timedelta(seconds=settings.rotation_race_window_seconds))

    async def deregister() -> None:
        await admin.api.deregister(device.device_id)

    return {
        "revoked-by-admin": revoke_by_admin,
        "rotated": rotate,
        "device-deregistered": deregister,
    }[request.param]


@pytest.fixture
async def phone(admin: SignedInClient, device_client: httpx.AsyncClient) -> AdminAppTokens:
    """The admin's own phone, connected by the admin mobile app's QR code."""
    return await connect(admin, device_client)


@pytest.fixture
async def presence_tasks_end_before_shutdown(app: Starlette) -> AsyncIterator[None]:
    """End the Redis presence store's background tasks before the app stops.

    Its `stop()` cancels them once and waits, but redis-py can swallow a cancellation that
    lands mid-command (a heartbeat flush), and shutdown then hangs; cancelling until each
    task has ended is what `stop()` itself should do. Pending heartbeats are still written
    by `stop()`.
    """
    yield
    store = runtime(app).presence
    if isinstance(store, RedisPresenceStore):
        for task in store._tasks:
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.1)
