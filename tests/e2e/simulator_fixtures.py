"""What the simulator's e2e tests share: the deployment they play against (`Target`, made by
the `target` fixture in conftest.py) and signed-in clients for it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from simulator.admin import AdminApi, admin_http_client
from simulator.profiles import identity
from simulator.protocol import DeviceApi, device_http_client
from simulator.scanner import SimulatedScanner

# Short enough that presence and expiry are seen within seconds, not minutes.
ONLINE_WINDOW = 3
SWEEP_EVERY = 1
CODE_TTL = 4
# Shorter than the code's life, or an approved typed pairing could never be collected.
POLL_INTERVAL = 1
# A device's own retry of a rotation may present the old pair this long.
RACE_WINDOW = 2
SHORT_WINDOWS = {
    "HEARTBEAT_ONLINE_WINDOW_SECONDS": str(ONLINE_WINDOW),
    "PRESENCE_SWEEP_EVERY_SECONDS": str(SWEEP_EVERY),
    "EXPIRE_SESSIONS_EVERY_SECONDS": "1",
    "PAIRING_CODE_TTL_SECONDS": str(CODE_TTL),
    "PAIRING_POLL_INTERVAL_SECONDS": str(POLL_INTERVAL),
    "ROTATION_RACE_WINDOW_SECONDS": str(RACE_WINDOW),
}


@dataclass(frozen=True)
class Target:
    """Where the simulator's devices and its admin talk, and the windows the server uses."""

    name: str
    device_url: str
    admin_url: str
    admin_email: str
    admin_password: str = field(repr=False)
    online_window: float = ONLINE_WINDOW
    code_ttl: float = CODE_TTL
    race_window: float = RACE_WINDOW

    def scanner(self, api: DeviceApi, profile: str = "iphone-14") -> SimulatedScanner:
        serial = f"E2E-{secrets.token_hex(4).upper()}"
        return SimulatedScanner(identity(profile, serial), api)


@asynccontextmanager
async def signed_in(target: Target) -> AsyncIterator[tuple[DeviceApi, AdminApi]]:
    """A device API client and an admin signed in by email and password."""
    async with (
        device_http_client(target.device_url) as device_client,
        admin_http_client(target.admin_url) as admin_client,
    ):
        admin = AdminApi(admin_client)
        await admin.login(target.admin_email, target.admin_password)
        yield DeviceApi(device_client), admin
