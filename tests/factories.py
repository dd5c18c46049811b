"""Build the world through the public services and the simulator's clients, in a given state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import httpx

from app import clock
from app.models import Device, Kind, User
from app.models.user import Role
from app.services import accounts
from simulator.admin import PAIRING_SESSIONS, AdminApi
from simulator.protocol import Credentials, DeviceApi, DeviceFields, PkcePair
from tests.scanner import DOCK_SCANNER

DEFAULT_PASSWORD = "correct horse battery staple"
# The console's script reads this double-submit cookie and echoes it in X-CSRF-Token.
CSRF_COOKIE = "polaris_csrf"
# What the `pair` and `end_credentials` fixtures hand a test.
PairScanner = Callable[[], Awaitable[Credentials]]
EndCredentials = Callable[[], Awaitable[None]]


async def make_user(
    role: Role = Role.ADMIN, *, email: str | None = None, password: str = DEFAULT_PASSWORD
) -> User:
    email = email or f"{role.value}@example.com"
    return await accounts.create_user(email=email, password=password, role=role)


async def saved_scanners(owner_id: UUID, size: int, **fields: Any) -> list[str]:
    """The ids of `size` scanners written straight to the database (no pairing, no
    credentials), registered now: rows for the presence bookkeeping to work on."""
    now = clock.now()
    devices = [
        Device(
            id=uuid4(),
            kind=Kind.SCANNER,
            label=f"Dock {index:03d} scanner",
            platform="ios",
            owner_id=owner_id,
            registered_at=now,
            **fields,
        )
        for index in range(size)
    ]
    await Device.bulk_create(devices)
    return [str(device.id) for device in devices]


@dataclass(frozen=True)
class SignedInClient:
    """A console session: `api` for the admin calls, `client` for the raw answers."""

    client: httpx.AsyncClient
    user: User
    csrf_token: str
    api: AdminApi

    def write_headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf_token}


async def sign_in(
    client: httpx.AsyncClient, user: User, password: str = DEFAULT_PASSWORD
) -> SignedInClient:
    api = AdminApi(client)
    await api.login(user.email, password)
    return SignedInClient(client, user, client.cookies[CSRF_COOKIE], api)


async def mint_code(client: httpx.AsyncClient, csrf_token: str) -> dict[str, Any]:
    """The console's Register device call, its answer as the wire has it (camelCase)."""
    response = await client.post(PAIRING_SESSIONS, headers={"X-CSRF-Token": csrf_token})
    assert response.status_code == 201, response.text
    minted: dict[str, Any] = response.json()
    return minted


async def pair_scanner(
    admin: SignedInClient, device_client: httpx.AsyncClient, fields: DeviceFields = DOCK_SCANNER
) -> Credentials:
    """A code minted by the signed-in admin, redeemed by QR as a phone would."""
    minted = await admin.api.mint_code()
    return await DeviceApi(device_client).register_scanned(
        minted.pairing_uri, pkce=PkcePair.generate(), fields=fields
    )
