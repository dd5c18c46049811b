"""`polaris demo`: the service with a small simulated fleet, so the console is alive on a
first look. A dozen simulated iPhones, iPads and Macs pair by QR code and heartbeat (a few
drop off the network now and then), and one more waits for an admin to approve its typed
code. It speaks to the server over HTTP through the public simulator, like any client."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable

import httpx
import uvicorn

from app.edge.one_write import OneWriteHttpToolsProtocol
from app.main import create_app
from app.settings import Settings
from simulator.admin import AdminApi, admin_http_client
from simulator.fleet import Fleet, FleetConfig
from simulator.problems import ProblemError
from simulator.profiles import identity
from simulator.protocol import DeviceApi, PendingPairing, device_http_client
from simulator.scanner import SimulatedScanner

FLEET_SIZE = 11
FLAKY = 0.1
# A typed code waits only as long as its code lives; a new one takes its place.
WAITING_SERIAL = "DEMO-TYPED"


async def run_demo(
    settings: Settings,
    *,
    host: str,
    port: int,
    email: str,
    password: str,
    say: Callable[[str], None],
) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        http=OneWriteHttpToolsProtocol,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            return
        await asyncio.sleep(0.05)
    url = f"http://{host}:{port}"
    stop = asyncio.Event()
    async with admin_http_client(url) as admin_client, device_http_client(url) as devices:
        admin = AdminApi(admin_client)
        await admin.login(email, password)
        fleet = Fleet(
            FleetConfig(
                devices=FLEET_SIZE,
                heartbeat=settings.heartbeat_interval_seconds,
                flaky=FLAKY,
                seed="demo",
            ),
            clients=[devices],
            server_url=url,
            admin=admin,
        )
        await fleet.enrol()
        say(f"Demo fleet: {fleet.stats.paired} simulated devices paired and heartbeating.")
        background = [
            asyncio.create_task(fleet.run(stop)),
            asyncio.create_task(_keep_one_waiting(admin, DeviceApi(devices), say)),
        ]
        # Until Ctrl+C: uvicorn handles the signal and `serve` returns.
        await serving
        stop.set()
        background[1].cancel()
        await asyncio.gather(*background, return_exceptions=True)


async def _keep_one_waiting(admin: AdminApi, api: DeviceApi, say: Callable[[str], None]) -> None:
    """One device always waiting for approval of its typed code, until someone approves."""
    scanner = SimulatedScanner(identity("ipad-air", WAITING_SERIAL, "Loading dock iPad"), api)

    async def announce(session_id: str, pending: PendingPairing) -> None:
        say(
            f"Waiting for approval: '{scanner.identity.label}', check code "
            f"{pending.check_code}. Approve it with POST "
            f"/api/v1/admin/pairing-sessions/{session_id}/approve (pairing session {session_id})."
        )

    while True:
        minted = await admin.mint_code()
        with contextlib.suppress(ProblemError, httpx.HTTPError):
            await scanner.pair_by_code(
                minted.code, on_pending=functools.partial(announce, minted.pairing_session_id)
            )
            say(f"'{scanner.identity.label}' was approved and paired.")
            return
