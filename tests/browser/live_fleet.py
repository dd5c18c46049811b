"""A small warehouse fleet for the console to show while Playwright drives it.

Scanners played by the simulator over HTTP, on an event loop in a thread of their own
(Playwright's sync API owns the test's thread and its loop); the online ones keep
heartbeating until the fleet stops, the others fall silent after one heartbeat.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import CancelledError, Future
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import httpx

from simulator.admin import AdminApi, admin_http_client
from simulator.profiles import Identity, identity
from simulator.protocol import USER_AGENT, DeviceApi, PendingPairing
from simulator.scanner import SimulatedScanner

T = TypeVar("T")


@dataclass(frozen=True)
class Member:
    identity: Identity
    online: bool


# Oldest first: the Devices page lists the newest at the top.
WAREHOUSE: tuple[Member, ...] = (
    Member(identity("mac-mini", "WH-0101", "Receiving Mac mini"), online=False),
    Member(identity("iphone-14", "WH-0102", "Night shift iPhone"), online=False),
    Member(identity("ipad-air", "WH-0103", "Dock 3 iPad"), online=True),
    Member(identity("iphone-se", "WH-0104", "Forklift 7 iPhone"), online=True),
    Member(identity("macbook-air", "WH-0105", "Returns desk MacBook"), online=True),
    Member(identity("iphone-15-pro", "WH-0106", "Front desk iPhone"), online=True),
)
LOADING_DOCK_IPAD = identity("ipad-air", "WH-0107", "Loading dock iPad")


@dataclass(frozen=True)
class TypedPairing:
    """A scanner that typed a code: its check code once the server took the code, its
    deviceId once an admin approved and it collected its credentials."""

    check_code: Future[str] = field(default_factory=Future)
    device_id: Future[str] = field(default_factory=Future)


class LiveFleet:
    """Use as a context manager; `errors` holds every refusal or failure a device met."""

    _stop: asyncio.Event
    _api: DeviceApi
    _admin: AdminApi

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.device_ids: dict[str, str] = {}
        self.errors: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        # A daemon, so a fleet that failed to stop never keeps pytest from exiting.
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="live-fleet", daemon=True
        )
        self._clients = AsyncExitStack()
        self._beating: list[asyncio.Task[None]] = []
        self._waiting: list[asyncio.Task[None]] = []

    def __enter__(self) -> LiveFleet:
        self._thread.start()
        try:
            self._call(self._open())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            self._call(self._close())
        finally:
            self._stop_loop()

    def enrol(self, members: tuple[Member, ...], *, admin: tuple[str, str]) -> None:
        """An admin mints a code for each member in turn, and the member scans it."""
        self._call(self._enrol(members, *admin))

    def type_code(self, who: Identity, code: str) -> TypedPairing:
        """`who` types `code` off the console and waits for the admin's decision; online once
        paired."""
        typed = TypedPairing()
        self._loop.call_soon_threadsafe(self._start_typing, who, code, typed)
        return typed

    def _call(self, work: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    async def _open(self) -> None:
        self._stop = asyncio.Event()
        devices = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"User-Agent": USER_AGENT},
            # Well inside uvicorn's 5 s keep-alive, so a heartbeat never goes out on a
            # pooled connection the server is closing as idle.
            limits=httpx.Limits(keepalive_expiry=1),
            timeout=15,
        )
        self._api = DeviceApi(await self._clients.enter_async_context(devices))
        admin = await self._clients.enter_async_context(admin_http_client(self.base_url))
        self._admin = AdminApi(admin)

    async def _close(self) -> None:
        self._stop.set()
        # A scanner still waiting for a decision gives up when the fleet stops.
        for waiting in self._waiting:
            waiting.cancel()
        await asyncio.gather(*self._waiting, return_exceptions=True)
        outcomes = await asyncio.gather(*self._beating, return_exceptions=True)
        self.errors.extend(outcome for outcome in outcomes if isinstance(outcome, BaseException))
        await self._clients.aclose()

    async def _enrol(self, members: tuple[Member, ...], email: str, password: str) -> None:
        await self._admin.login(email, password)
        for member in members:
            scanner = SimulatedScanner(member.identity, self._api)
            await scanner.pair_by_qr((await self._admin.mint_code()).pairing_uri)
            await self._join(scanner, online=member.online)

    def _start_typing(self, who: Identity, code: str, typed: TypedPairing) -> None:
        task = self._loop.create_task(self._pair_typed(who, code, typed))
        task.add_done_callback(lambda done: _forward_failure(done, typed))
        self._waiting.append(task)

    async def _pair_typed(self, who: Identity, code: str, typed: TypedPairing) -> None:
        async def show_check_code(pending: PendingPairing) -> None:
            typed.check_code.set_result(pending.check_code)

        scanner = SimulatedScanner(who, self._api)
        await scanner.pair_by_code(code, on_pending=show_check_code, within=60)
        await self._join(scanner, online=True)
        typed.device_id.set_result(self.device_ids[who.label])

    async def _join(self, scanner: SimulatedScanner, *, online: bool) -> None:
        await scanner.heartbeat()
        assert scanner.device_id is not None
        self.device_ids[scanner.identity.label] = scanner.device_id
        if online:
            beating = scanner.run(self._stop, on_error=self.errors.append)
            self._beating.append(asyncio.create_task(beating))


def _forward_failure(done: asyncio.Task[None], typed: TypedPairing) -> None:
    """A refused or failed typed pairing fails whichever answer the test still waits for."""
    error = CancelledError() if done.cancelled() else done.exception()
    if error is None:
        return
    for pending in (typed.check_code, typed.device_id):
        if not pending.done():
            pending.set_exception(error)
