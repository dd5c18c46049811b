"""Many simulated devices on one event loop, sharing a few dozen connections in small pools.

Each device is a task that sleeps until its next heartbeat is due; start times are spread
at random over a ramp, because devices in lock-step make a load no real fleet makes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from simulator.admin import AdminApi
from simulator.problems import ProblemError, RateLimited
from simulator.profiles import fleet_identities
from simulator.protocol import DeviceApi
from simulator.scanner import SimulatedScanner
from simulator.state import StateFile, StoredDevice
from simulator.stats import FleetReport, FleetStats, percentile

# Answers after which a device's credentials are dead: it stops and is re-paired next run.
DEAD_CREDENTIALS = frozenset({"token_revoked", "invalid_credentials"})
SAVE_EVERY = 2.0


@dataclass(frozen=True)
class FleetConfig:
    devices: int
    heartbeat: float = 30.0
    # Chance, at each heartbeat, that a device drops off the network for 1 to 4 intervals.
    flaky: float = 0.0
    duration: float | None = None
    connections: int = 64
    ramp: float | None = None
    jitter: float = 0.1
    pairing_concurrency: int = 16
    seed: str = "fleet"

    def ramp_seconds(self) -> float:
        if self.ramp is not None:
            return self.ramp
        if self.duration is not None:
            return min(self.heartbeat, self.duration / 2)
        return self.heartbeat


@dataclass
class Member:
    scanner: SimulatedScanner
    stored: StoredDevice | None = None
    online: bool = False
    dead: bool = False
    rng: random.Random = field(default_factory=random.Random)


class Fleet:
    def __init__(
        self,
        config: FleetConfig,
        *,
        clients: Sequence[httpx.AsyncClient],
        server_url: str,
        admin: AdminApi | None = None,
        state: StateFile | None = None,
    ) -> None:
        self.config = config
        # httpcore's pool does O(connections x queued) work on every request it hands out, so
        # one pool of 200 connections burns a core by itself; many small pools do not.
        per_client = max(1, config.connections // max(1, len(clients)))
        self.apis = [DeviceApi(c, max_in_flight=per_client) for c in clients]
        self.server_url = server_url
        self.admin = admin
        self.state = state
        self.stats = FleetStats(devices=config.devices)
        self.members = [
            Member(SimulatedScanner(identity, self._api(index), rng=random.Random(identity.serial)))
            for index, identity in enumerate(fleet_identities(config.devices, seed=config.seed))
        ]
        self._stored_elsewhere: list[StoredDevice] = []

    def _api(self, index: int) -> DeviceApi:
        return self.apis[index % len(self.apis)]

    # -- pairing ---------------------------------------------------------------------------

    def _restore(self) -> None:
        if self.state is None:
            return
        stored = {device.serial: device for device in self.state.load(self.server_url)}
        for index, member in enumerate(self.members):
            found = stored.pop(member.scanner.identity.serial, None)
            if found is not None:
                member.stored = found
                member.scanner = SimulatedScanner(
                    found.identity(),
                    self._api(index),
                    credentials=found.credentials(),
                    rng=member.scanner.rng,
                )
        # Devices of other fleets or `pair` runs in the same file are kept as they are.
        self._stored_elsewhere = list(stored.values())

    def save(self) -> None:
        if self.state is None:
            return
        mine = [m.stored for m in self.members if m.stored is not None and not m.dead]
        self.state.save(self.server_url, self._stored_elsewhere + mine)

    async def _pair(self, member: Member) -> None:
        assert self.admin is not None
        for _ in range(5):
            try:
                minted = await self.admin.mint_code()
                self.stats.request()
                credentials = await member.scanner.pair_by_qr(minted.pairing_uri)
                self.stats.request()
            except RateLimited as exc:
                self.stats.error(exc.code)
                await asyncio.sleep(exc.retry_after or 1.0)
                continue
            member.stored = StoredDevice.of(member.scanner.identity, credentials)
            self.stats.paired += 1
            return
        raise RuntimeError("still rate limited after five tries")

    async def enrol(self) -> None:
        """Load the devices the state file knows; pair the rest through the admin API."""
        self.stats.phase = "pairing"
        self._restore()
        self.stats.paired = sum(1 for m in self.members if m.stored is not None)
        missing = [m for m in self.members if m.stored is None]
        if missing and self.admin is None:
            raise RuntimeError(
                f"{len(missing)} devices are not paired yet and no admin credentials were given"
            )
        gate = asyncio.Semaphore(self.config.pairing_concurrency)
        last_save = time.monotonic()

        async def pair(member: Member) -> None:
            nonlocal last_save
            async with gate:
                try:
                    await self._pair(member)
                except (ProblemError, httpx.HTTPError, RuntimeError) as exc:
                    self.stats.pairing_failed += 1
                    self.stats.error(getattr(exc, "code", type(exc).__name__))
            if time.monotonic() - last_save > SAVE_EVERY:
                last_save = time.monotonic()
                self.save()

        try:
            await asyncio.gather(*(pair(m) for m in missing))
        finally:
            self.save()

    # -- heartbeating ----------------------------------------------------------------------

    async def _live(self, member: Member, first_at: float) -> None:
        config, stats, scanner, rng = self.config, self.stats, member.scanner, member.rng
        due = first_at
        while True:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if config.flaky and rng.random() < config.flaky:
                await self._outage(member)
                due = time.monotonic()
            session = scanner.session
            assert session is not None
            exchanges, rotations = session.token_exchanges, session.rotations
            started = time.monotonic()
            try:
                await scanner.heartbeat()
            except ProblemError as exc:
                self._count(session.token_exchanges - exchanges, started)
                stats.error(exc.code)
                if exc.code in DEAD_CREDENTIALS:
                    self._bury(member)
                    return
                self._offline(member)
            except httpx.HTTPError as exc:
                self._count(session.token_exchanges - exchanges, started)
                stats.error(type(exc).__name__)
                self._offline(member)
            else:
                now = time.monotonic()
                self._count(session.token_exchanges - exchanges, started)
                if session.rotations != rotations:
                    # It renewed its credentials (`rotateAfterIso` passed): the next run
                    # must resume with the new pair, the old one is dead.
                    stats.request()
                    member.stored = StoredDevice.of(scanner.identity, session.credentials)
                stats.heartbeat_ok(now - started, max(0.0, started - due), now)
                if not member.online:
                    member.online = True
                    stats.online += 1
            due += config.heartbeat * rng.uniform(1 - config.jitter, 1 + config.jitter)

    def _count(self, exchanges: int, started: float) -> None:
        # Only answered requests count: a heartbeat cancelled at shutdown was never one.
        for _ in range(exchanges):
            self.stats.request(started)
        self.stats.request()

    def _offline(self, member: Member) -> None:
        if member.online:
            member.online = False
            self.stats.online -= 1

    async def _outage(self, member: Member) -> None:
        member.scanner.drop_off()
        self._offline(member)
        self.stats.dropped += 1
        try:
            await asyncio.sleep(self.config.heartbeat * member.rng.uniform(1, 4))
        finally:
            member.scanner.come_back()
            self.stats.dropped -= 1

    def _bury(self, member: Member) -> None:
        self._offline(member)
        member.dead = True
        self.stats.revoked += 1

    async def run(self, stop: asyncio.Event | None = None) -> FleetReport:
        """Heartbeat every paired device until `duration` passes or `stop` is set."""
        stop = stop or asyncio.Event()
        stats, config = self.stats, self.config
        stats.phase = "running"
        stats.restart_clock()
        ramp = config.ramp_seconds()
        now = time.monotonic()
        stats.steady_from = now + ramp
        steady_mark = asyncio.get_running_loop().call_later(ramp, stats.mark_steady)
        spread = random.Random(config.seed)
        live = [m for m in self.members if m.scanner.session is not None]
        tasks = [asyncio.create_task(self._live(m, now + spread.uniform(0, ramp))) for m in live]
        try:
            stopper = asyncio.create_task(stop.wait())
            timeout = config.duration
            await asyncio.wait([stopper], timeout=timeout)
            stopper.cancel()
        finally:
            steady_mark.cancel()
            stats.phase = "stopping"
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.save()
        stats.phase = "done"
        return self.report()

    async def online_per_admin_api(self) -> int:
        """How many of this fleet's devices the server itself reports online."""
        assert self.admin is not None
        mine = {m.scanner.device_id for m in self.members if m.scanner.device_id is not None}
        # Each item's own `online` flag, not the `online=` filter: Polaris filters on the
        # database's last-seen time, which trails the presence store by a flush interval.
        listed = await self.admin.all_devices(kind="scanner")
        return sum(1 for device in listed if device["deviceId"] in mine and device["online"])

    def report(self) -> FleetReport:
        stats = self.stats
        ran_for = stats.elapsed()
        steady_for = max(0.0, time.monotonic() - (stats.steady_from or time.monotonic()))
        latencies, lags = list(stats.latencies), list(stats.lags)
        return FleetReport(
            devices=self.config.devices,
            paired=stats.paired,
            pairing_failed=stats.pairing_failed,
            interval=self.config.heartbeat,
            ran_for=ran_for,
            steady_for=min(steady_for, ran_for),
            heartbeats_ok=stats.heartbeats_ok,
            steady_heartbeats=stats.steady_heartbeats,
            requests=stats.requests,
            errors=dict(stats.errors),
            online_at_end=stats.online,
            revoked=stats.revoked,
            cpu_seconds=stats.cpu_seconds(),
            steady_cpu_seconds=stats.steady_cpu_seconds(),
            latency_p50=percentile(latencies, 0.5),
            latency_p99=percentile(latencies, 0.99),
            lag_p50=percentile(lags, 0.5),
            lag_p99=percentile(lags, 0.99),
        )
