"""The devices the bench cycles through, paired and signed in with the simulator's wire client.

An admin signs in and mints a code per device; each device registers with the code, the
console proof from the code's pairing URI and its own PKCE challenge, as a scanning app does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import httpx

from loadtests.errors import BenchError
from simulator.admin import AdminApi, admin_http_client
from simulator.problems import ProblemError
from simulator.protocol import (
    Credentials,
    DeviceApi,
    DeviceFields,
    PkcePair,
    device_http_client,
)

T = TypeVar("T")
# Requests in flight while pairing or exchanging tokens: one server worker answers them, so
# more would only queue.
IN_FLIGHT = 8
TIMEOUT = 30.0
FIELDS = DeviceFields(
    label="Bench scanner",
    platform="ios",
    model="iPhone15,2",
    os_version="17.5",
    app_version="2.4.0",
    apns_environment="production",
    capabilities=("scan", "push"),
)


async def _checked(what: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except (ProblemError, httpx.HTTPError) as exc:
        raise BenchError(f"{what} failed: {exc}") from exc


async def _gathered(count: int, work: Callable[[int], Awaitable[T]]) -> list[T]:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(index: int) -> T:
        async with gate:
            return await work(index)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _signed_in(client: httpx.AsyncClient, email: str, password: str) -> AdminApi:
    admin = AdminApi(client)
    await _checked("sign-in", admin.login(email, password))
    return admin


async def _pair_one(admin: AdminApi, api: DeviceApi, index: int) -> Credentials:
    minted = await _checked("minting a code", admin.mint_code())
    return await _checked(
        "registering",
        api.register_scanned(
            minted.scanned,
            pkce=PkcePair.generate(),
            fields=dataclasses.replace(FIELDS, label=f"Bench scanner {index:05d}"),
        ),
    )


async def pair_devices(base_url: str, email: str, password: str, count: int) -> list[Credentials]:
    async with (
        admin_http_client(base_url, timeout=TIMEOUT) as admin_client,
        device_http_client(base_url, connections=IN_FLIGHT, timeout=TIMEOUT) as device_client,
    ):
        admin = await _signed_in(admin_client, email, password)
        api = DeviceApi(device_client)
        return await _gathered(count, lambda i: _pair_one(admin, api, i))


async def access_tokens(base_url: str, devices: Sequence[Credentials]) -> list[str]:
    async with device_http_client(base_url, connections=IN_FLIGHT, timeout=TIMEOUT) as client:
        api = DeviceApi(client, max_in_flight=IN_FLIGHT)
        granted = await asyncio.gather(
            *(_checked("token exchange", api.access_token(device)) for device in devices)
        )
    return [token.token for token in granted]


async def shows_online(
    base_url: str, email: str, password: str, device_id: str, *, within: float = 30.0
) -> bool:
    """The heartbeats reached presence and the last-seen flush, as an admin sees it."""
    async with admin_http_client(base_url, timeout=10) as client:
        admin = await _signed_in(client, email, password)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            # A refusal is not the answer yet: the device may still be on its way.
            with contextlib.suppress(ProblemError):
                if (await admin.device(device_id))["online"] is True:
                    return True
            await asyncio.sleep(1)
    return False
