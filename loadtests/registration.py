"""Registration latency on the QR path: many devices scanning their codes at once.

An admin mints every code first (minting is not what is measured); then the devices
register with `concurrency` requests in flight, each timed from send to answer, as an app
would see it (`Idempotency-Key` and all, through `simulator.protocol`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from loadtests.cpus import ProcessGroup, cores_between, group_cpu_seconds
from loadtests.devices import FIELDS, TIMEOUT, _checked, _gathered, _signed_in
from loadtests.latency import percentile
from simulator.admin import admin_http_client
from simulator.protocol import DeviceApi, PkcePair, device_http_client


@dataclass(frozen=True)
class RegistrationFigures:
    count: int
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    # Cores each process group kept busy while the registrations ran.
    cores: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def p(self, share: float) -> float:
        return percentile(self.latencies_ms, share)


async def registration_latencies(
    base_url: str,
    email: str,
    password: str,
    *,
    count: int,
    concurrency: int,
    groups: Sequence[ProcessGroup] = (),
) -> RegistrationFigures:
    async with contextlib.AsyncExitStack() as stack:
        admin_client = await stack.enter_async_context(admin_http_client(base_url, timeout=TIMEOUT))
        # One client and one connection per registering app, as phones have: a shared pool
        # of 50 spent more of this process's CPU choosing a connection than registering.
        apps = [
            DeviceApi(
                await stack.enter_async_context(
                    device_http_client(base_url, connections=1, timeout=TIMEOUT)
                )
            )
            for _ in range(concurrency)
        ]
        admin = await _signed_in(admin_client, email, password)
        minted = await _gathered(count, lambda _: _checked("minting a code", admin.mint_code()))
        # Made before the clock starts: an app has its PKCE pair before it scans.
        proofs = [PkcePair.generate() for _ in range(count)]
        pending = iter(range(count))
        latencies: list[float] = []

        async def app(api: DeviceApi) -> None:
            for index in pending:
                fields = dataclasses.replace(FIELDS, label=f"Registration {index:05d}")
                started = time.perf_counter()
                await _checked(
                    "registering",
                    api.register_scanned(minted[index].scanned, pkce=proofs[index], fields=fields),
                )
                latencies.append((time.perf_counter() - started) * 1000)

        cpu_before = group_cpu_seconds(groups)
        started = time.perf_counter()
        await asyncio.gather(*(app(api) for api in apps))
        seconds = time.perf_counter() - started
        cores = cores_between(cpu_before, group_cpu_seconds(groups), seconds)
    return RegistrationFigures(count, concurrency, seconds, latencies, cores)
