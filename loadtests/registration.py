"""Registration latency on the QR path: many devices scanning their codes at once.

An admin mints every code first (minting is not what is measured); then the devices
register with `concurrency` requests in flight, each timed from send to answer, as an app
would see it (`Idempotency-Key` and all, through `simulator.protocol`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass

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

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def p(self, share: float) -> float:
        return percentile(self.latencies_ms, share)


async def registration_latencies(
    base_url: str, email: str, password: str, *, count: int, concurrency: int
) -> RegistrationFigures:
    async with (
        admin_http_client(base_url, timeout=TIMEOUT) as admin_client,
        device_http_client(base_url, connections=concurrency, timeout=TIMEOUT) as device_client,
    ):
        admin = await _signed_in(admin_client, email, password)
        minted = await _gathered(count, lambda _: _checked("minting a code", admin.mint_code()))
        api = DeviceApi(device_client)
        # Made before the clock starts: an app has its PKCE pair before it scans.
        proofs = [PkcePair.generate() for _ in range(count)]
        gate = asyncio.Semaphore(concurrency)
        latencies: list[float] = []

        async def one(index: int) -> None:
            fields = dataclasses.replace(FIELDS, label=f"Registration {index:05d}")
            async with gate:
                started = time.perf_counter()
                await _checked(
                    "registering",
                    api.register_scanned(minted[index].scanned, pkce=proofs[index], fields=fields),
                )
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        seconds = time.perf_counter() - started
    return RegistrationFigures(count, concurrency, seconds, latencies)
