"""One simulated scanner app: pairs, heartbeats, drops off, rotates, gets lost."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import Awaitable, Callable

from simulator.problems import ProblemError
from simulator.profiles import Identity
from simulator.protocol import (
    Credentials,
    DeviceApi,
    DeviceSession,
    PairingUri,
    PendingPairing,
    PkcePair,
    new_installation_id,
)

OnPending = Callable[[PendingPairing], Awaitable[None]]


class DeviceLost(RuntimeError):
    """The device was lost: it never says anything again."""


class NetworkDown(RuntimeError):
    """The device is off the network: nothing leaves it."""


class NotPaired(RuntimeError):
    pass


class SimulatedScanner:
    """A phone, iPad or Mac running the scanner app, speaking only the public protocol."""

    def __init__(
        self,
        identity: Identity,
        api: DeviceApi,
        *,
        credentials: Credentials | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.identity = identity
        self.api = api
        self.rng = rng or random.Random()
        self.session = DeviceSession(api, credentials) if credentials else None
        self.network_up = True
        self.lost = False
        self.battery = self.rng.uniform(0.35, 1.0)
        self.push_generation = 0
        self.last_pending: PendingPairing | None = None
        self.last_pkce: PkcePair | None = None

    def __repr__(self) -> str:
        return f"SimulatedScanner({self.identity.serial}, device_id={self.device_id})"

    @property
    def device_id(self) -> str | None:
        return self.session.device_id if self.session else None

    @property
    def credentials(self) -> Credentials | None:
        return self.session.credentials if self.session else None

    def _require_session(self) -> DeviceSession:
        self._require_reachable()
        if self.session is None:
            raise NotPaired(f"{self.identity.serial} is not paired")
        return self.session

    def _require_reachable(self) -> None:
        if self.lost:
            raise DeviceLost(f"{self.identity.serial} is lost")
        if not self.network_up:
            raise NetworkDown(f"{self.identity.serial} is off the network")

    def _paired(self, credentials: Credentials) -> Credentials:
        self.session = DeviceSession(self.api, credentials)
        return credentials

    async def pair_by_qr(self, uri: PairingUri | str) -> Credentials:
        """Scan the console's QR code: paired at once, with a fresh PKCE pair of its own."""
        self._require_reachable()
        credentials = await self.api.register_scanned(
            uri, pkce=PkcePair.generate(), fields=self.identity.fields()
        )
        return self._paired(credentials)

    async def pair_by_code(
        self, code: str, *, on_pending: OnPending | None = None, within: float = 600.0
    ) -> Credentials:
        """Type the code, show the check code, and poll until an admin decides.

        `on_pending` runs once the server accepted the code, e.g. an admin approving it.
        Raises the refusal (`access_denied`, `expired_token`, …) if the answer is no.
        """
        self._require_reachable()
        pkce = PkcePair.generate()
        pending = await self.api.register_typed(code, pkce=pkce, fields=self.identity.fields())
        self.last_pending, self.last_pkce = pending, pkce
        if on_pending is not None:
            await on_pending(pending)
        credentials = await self.api.wait_for_approval(pending, pkce, within=within)
        return self._paired(credentials)

    async def heartbeat(self) -> float:
        session = self._require_session()
        self.battery = self.battery - 0.002 if self.battery > 0.2 else 1.0
        return await session.heartbeat(
            app_version=self.identity.profile.app_version,
            os_version=self.identity.profile.os_version,
            battery_level=self.battery,
        )

    async def run(
        self,
        stop: asyncio.Event,
        *,
        every: float | None = None,
        jitter: float = 0.1,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Heartbeat until `stop` is set or the device is lost; `every` overrides the server.

        A refusal or a network failure is reported to `on_error` and the device keeps
        trying on its schedule, as the real app does, unless its credentials are dead.
        """
        interval = every or 30.0
        while not stop.is_set() and not self.lost:
            if self.network_up:
                try:
                    asked = await self.heartbeat()
                    interval = every or asked
                except ProblemError as exc:
                    if on_error is not None:
                        on_error(exc)
                    if exc.code in ("token_revoked", "invalid_credentials"):
                        return
                except (NetworkDown, DeviceLost):
                    pass
            delay = interval * self.rng.uniform(1 - jitter, 1 + jitter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    def drop_off(self) -> None:
        """Out of coverage: heartbeats stop until `come_back`."""
        self.network_up = False

    def come_back(self) -> None:
        self.network_up = True

    def lose(self) -> None:
        """Lost for good: nothing is ever sent again."""
        self.lost = True

    async def rotate(self) -> Credentials:
        return await self._require_session().rotate()

    async def new_push_token(self) -> str:
        """A restore or reinstall gave the app a new APNs token; it uploads it."""
        session = self._require_session()
        self.push_generation += 1
        self.identity = self.identity.with_new_push_token(self.push_generation)
        await session.upload_push_token(
            push_token=self.identity.push_token,
            apns_environment=self.identity.profile.apns_environment,
        )
        return self.identity.push_token

    def clone(self) -> SimulatedScanner:
        """A copy of this device's storage on another machine: the same credentials, now,
        but another install of the app, so another installation id."""
        copied = self.credentials
        if copied is not None and copied.installation_id is not None:
            copied = dataclasses.replace(copied, installation_id=new_installation_id())
        return SimulatedScanner(self.identity, self.api, credentials=copied, rng=random.Random())

    def forget_pairing(self) -> None:
        """The app's 'sign out': credentials erased, the same phone can pair again."""
        self.session = None
