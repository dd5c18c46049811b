"""The fleet-scale soak: N seeded devices heartbeating through Locust against one box.

    python -m loadtests.bench --scale 100000 [--soak-seconds 300] [--locust-processes 2]

The whole deployment runs here, as it would on one machine: `polaris serve` (its workers),
one `polaris worker` (the jobs), PostgreSQL and Redis. Nothing is pinned: they share the
cores with Locust, as a box serving its own load test does.

1. A fresh database (`polaris_scale` on the bench's PostgreSQL server, dropped and created)
   and an empty Redis database (the bench's own, flushed), migrated, with an admin.
2. `polaris seed-devices` creates the N devices and writes their credentials where Locust
   reads them (timed: the seeding figure).
3. Locust plays every device (`HeartbeatingDevices`, one heartbeat per device every 30 s;
   each device trades its credentials for an access token first) for `--soak-seconds`,
   over `--locust-processes` processes, writing its CSV history.
4. While every device is still online: the admin API's count, the console timings and the
   presence memory in Redis.
5. Then the devices fall silent: the worker's next sweeps record all N going offline, and
   the sweep's own log line tells how long that pass took.

Through the steady part of the run (past the ramp and one heartbeat interval, to a few
seconds before Locust stops) the CPU of every process on the box is read from `/proc`:
Locust, `polaris serve`, `polaris worker`, PostgreSQL and Redis, per heartbeat served, and
what that would come to at the rate offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from redis import Redis

from loadtests.capacity import TARGET_UTILISATION, Costs, needs
from loadtests.console import PageTiming, console_timings, format_timings
from loadtests.cpus import ProcessGroup, cores_between, group_cpu_seconds, tree_cpu_seconds
from loadtests.errors import BenchError
from loadtests.latency import percentile
from loadtests.servers import (
    ROOT,
    free_port,
    fresh_database,
    polaris_command,
    polaris_env,
    run_checked,
    running,
)
from simulator.admin import AdminApi, admin_http_client
from simulator.protocol import HEARTBEAT, TOKEN

SCALE_DATABASE = "polaris_scale"
HEARTBEAT_EVERY_SECONDS = 30.0
ONLINE_WINDOW_SECONDS = 90


@dataclass
class SoakFigures:
    devices: int
    seed_seconds: float = 0.0
    heartbeats: int = 0
    heartbeat_failures: int = 0
    heartbeat_per_second: float = 0.0
    heartbeat_p50_ms: float = 0.0
    heartbeat_p99_ms: float = 0.0
    steady_p99_ms: list[float] = field(default_factory=list)
    exchanges: int = 0
    exchange_failures: int = 0
    online_at_end: int = -1
    presence_bytes: int = 0
    console: list[PageTiming] = field(default_factory=list)
    sweep_ms: float | None = None
    went_offline: int = 0
    server_cpu_seconds: float = 0.0
    # Table name -> (rows, bytes with its indexes), after the sweep.
    tables: dict[str, tuple[int, int]] = field(default_factory=dict)
    # The steady part's CPU: seconds since Locust started, and cores per process group.
    cpu_window: tuple[float, float] | None = None
    cores: dict[str, float] = field(default_factory=dict)
    window_heartbeats_per_second: float = 0.0


@dataclass
class Soak:
    workdir: Path
    devices: int
    seconds: int
    processes: int
    users: int
    server_workers: int
    # Users start over this long: a fleet arriving at once is a herd, not a soak.
    ramp_seconds: int
    postgres_url: str
    redis_url: str
    email: str = field(default_factory=lambda: f"scale-{secrets.token_hex(4)}@example.com")
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48), repr=False)

    @property
    def database_url(self) -> str:
        return self.postgres_url.rsplit("/", 1)[0] + f"/{SCALE_DATABASE}"

    def env(self, port: int) -> dict[str, str]:
        env = polaris_env(self.workdir, self.secret_key, port)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            # The jobs run in `polaris worker`, as in a deployment with Redis.
            EMBEDDED_SCHEDULER="false",
        )
        return env

    def run(self) -> SoakFigures:
        figures = SoakFigures(self.devices)
        port = free_port()
        env = self.env(port)
        base_url = f"http://127.0.0.1:{port}"
        asyncio.run(fresh_database(self.database_url))
        Redis.from_url(self.redis_url).flushdb()
        polaris = polaris_command()
        run_checked([*polaris, "migrate"], env, "polaris migrate")
        run_checked(
            [*polaris, "create-admin", "--email", self.email, "--password", self.password],
            env,
            "polaris create-admin",
        )
        state = self.workdir / "fleet.json"
        print(f"  seeding {self.devices:,} devices …", flush=True)
        started = time.monotonic()
        run_checked(
            [
                *polaris,
                "seed-devices",
                "--count",
                str(self.devices),
                "--state",
                str(state),
                "--server-url",
                base_url,
                "--yes",
            ],
            env,
            "polaris seed-devices",
        )
        figures.seed_seconds = time.monotonic() - started
        print(f"  seeded in {figures.seed_seconds:.1f} s", flush=True)
        with self._deployment(port, env) as (server, worker, worker_log):
            cpu_before = tree_cpu_seconds(server.pid)
            self._locust(base_url, state, figures, servers=(server.pid, worker.pid))
            figures.server_cpu_seconds = tree_cpu_seconds(server.pid) - cpu_before
            asyncio.run(self._while_online(base_url, figures))
            figures.presence_bytes = _presence_bytes(self.redis_url)
            print("  waiting for the devices to be swept offline …", flush=True)
            figures.sweep_ms, figures.went_offline = _offline_sweep(
                worker_log, self.devices, timeout=ONLINE_WINDOW_SECONDS + 120
            )
        figures.tables = asyncio.run(_table_sizes(self.database_url))
        return figures

    @contextlib.contextmanager
    def _deployment(
        self, port: int, env: dict[str, str]
    ) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], Path]]:
        polaris = polaris_command()
        serve = [
            *polaris,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(self.server_workers),
        ]
        worker_log = self.workdir / "worker.log"
        with (
            running(serve, port=port, env=env, log=self.workdir / "polaris.log", cwd=ROOT) as app,
            _background([*polaris, "worker"], env=env, log=worker_log) as worker,
        ):
            yield app, worker, worker_log

    def _locust(
        self, base_url: str, state: Path, figures: SoakFigures, *, servers: tuple[int, int]
    ) -> None:
        prefix = self.workdir / "soak"
        per_user = -(-self.devices // self.users)
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "loadtests" / "locustfile.py"),
            "HeartbeatingDevices",
            "--headless",
            "--host",
            base_url,
            "--users",
            str(self.users),
            "--spawn-rate",
            f"{self.users / max(1, self.ramp_seconds):.2f}",
            "--run-time",
            f"{self.seconds}s",
            "--processes",
            str(self.processes),
            "--csv",
            str(prefix),
            "--csv-full-history",
            "--only-summary",
            "--sim-state",
            str(state),
            "--heartbeat-every",
            str(HEARTBEAT_EVERY_SECONDS),
            "--devices-per-user",
            str(per_user),
        ]
        print(
            f"  Locust: {self.users} users x {per_user} devices over {self.processes} "
            f"processes for {self.seconds} s, started over {self.ramp_seconds} s …",
            flush=True,
        )
        log = self.workdir / "locust.log"
        # Past the ramp and one more heartbeat interval (every device's first token exchange).
        steady_after = self.ramp_seconds + HEARTBEAT_EVERY_SECONDS
        with log.open("wb") as sink:
            locust = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
            started = time.time()
            reading = _SteadyCpu(
                groups=_soak_groups(locust.pid, *servers),
                start_at=started + steady_after,
                end_at=started + self.seconds - 5,
            )
            reading.start()
            returncode = locust.wait()
            reading.join()
        # Locust exits 1 when any request failed: the figures say which.
        if returncode not in (0, 1):
            raise BenchError(f"locust exited with {returncode}; see {log}")
        _read_locust(prefix, figures, steady_after=steady_after)
        if reading.cores:
            figures.cpu_window = (reading.start_at - started, reading.end_at - started)
            figures.cores = reading.cores
            figures.window_heartbeats_per_second = _heartbeat_rate(
                prefix, reading.start_at, reading.end_at
            )

    async def _while_online(self, base_url: str, figures: SoakFigures) -> None:
        async with admin_http_client(base_url, timeout=60) as client:
            admin = AdminApi(client)
            await admin.login(self.email, self.password)
            summary = (await client.get("/api/v1/admin/fleet/summary")).json()
            figures.online_at_end = int(summary.get("online", -1))
        figures.console = await console_timings(base_url, self.email, self.password, samples=30)


GROWING_TABLES = ("devices", "device_tokens", "audit_events", "presence_changes", "outbox_events")


async def _table_sizes(database_url: str) -> dict[str, tuple[int, int]]:
    connection = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        sizes = {}
        for table in GROWING_TABLES:
            rows = await connection.fetchval(f'SELECT count(*) FROM "{table}"')  # noqa: S608
            size = await connection.fetchval("SELECT pg_total_relation_size($1)", table)
            sizes[table] = (int(rows), int(size))
        return sizes
    finally:
        await connection.close()


@contextlib.contextmanager
def _background(
    command: list[str], *, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=sink)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _soak_groups(locust: int, server: int, worker: int) -> list[ProcessGroup]:
    return [
        ProcessGroup("Locust", roots=(locust,)),
        ProcessGroup("polaris serve", roots=(server,)),
        ProcessGroup("polaris worker", roots=(worker,)),
        ProcessGroup("PostgreSQL", command="postgres"),
        ProcessGroup("Redis", command="redis-server"),
    ]


class _SteadyCpu(threading.Thread):
    """Reads the groups' CPU at `start_at` and `end_at` (wall-clock seconds); `cores` stays
    empty when the run is too short to have a steady part."""

    def __init__(self, *, groups: list[ProcessGroup], start_at: float, end_at: float) -> None:
        super().__init__(daemon=True)
        self.groups = groups
        self.start_at = start_at
        self.end_at = end_at
        self.cores: dict[str, float] = {}

    def run(self) -> None:
        if self.end_at - self.start_at < 10:
            return
        time.sleep(max(0.0, self.start_at - time.time()))
        before = group_cpu_seconds(self.groups)
        time.sleep(max(0.0, self.end_at - time.time()))
        after = group_cpu_seconds(self.groups)
        self.cores = cores_between(before, after, self.end_at - self.start_at)


def _heartbeat_rate(prefix: Path, start_at: float, end_at: float) -> float:
    """Heartbeats a second between two wall-clock times, from Locust's cumulative history."""
    with Path(f"{prefix}_stats_history.csv").open() as history:
        rows = [
            (int(r["Timestamp"]), int(r["Total Request Count"]))
            for r in csv.DictReader(history)
            if r["Name"] == HEARTBEAT
        ]
    inside = [(at, count) for at, count in rows if start_at <= at <= end_at]
    if len(inside) < 2 or inside[-1][0] == inside[0][0]:
        return 0.0
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def _read_locust(prefix: Path, figures: SoakFigures, *, steady_after: float) -> None:
    with Path(f"{prefix}_stats.csv").open() as stats:
        for row in csv.DictReader(stats):
            if row["Name"] == HEARTBEAT:
                figures.heartbeats = int(row["Request Count"])
                figures.heartbeat_failures = int(row["Failure Count"])
                figures.heartbeat_per_second = float(row["Requests/s"])
                figures.heartbeat_p50_ms = float(row["50%"])
                figures.heartbeat_p99_ms = float(row["99%"])
            elif row["Name"] == TOKEN:
                figures.exchanges = int(row["Request Count"])
                figures.exchange_failures = int(row["Failure Count"])
    with Path(f"{prefix}_stats_history.csv").open() as history:
        rows = [r for r in csv.DictReader(history) if r["Name"] == HEARTBEAT]
    if rows:
        first = int(rows[0]["Timestamp"])
        # The history's percentiles cover the last few seconds: past the ramp, each row is
        # the steady state's latency at that moment.
        figures.steady_p99_ms = [
            float(r["99%"])
            for r in rows
            if int(r["Timestamp"]) - first >= steady_after and r["99%"] not in ("N/A", "")
        ]


def _presence_bytes(redis_url: str) -> int:
    client = Redis.from_url(redis_url)
    total = 0
    for key in client.scan_iter(match="polaris:*"):
        used: int | None = client.memory_usage(key, samples=0)  # type: ignore[assignment]
        total += used or 0
    return total


def _offline_sweep(worker_log: Path, devices: int, *, timeout: float) -> tuple[float | None, int]:
    """The sweep passes that recorded the devices going offline: the longest pass's time and
    how many went offline in all, once all have or `timeout` passes."""
    deadline = time.monotonic() + timeout
    went_offline, longest = 0, None
    while time.monotonic() < deadline:
        went_offline, longest = 0, None
        for line in worker_log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line) if line.startswith("{") else {}
                if entry.get("event") == "presence_swept" and entry.get("went_offline"):
                    went_offline += int(entry["went_offline"])
                    took = float(entry.get("duration_ms", 0))
                    longest = took if longest is None else max(longest, took)
        if went_offline >= devices:
            break
        time.sleep(2)
    return longest, went_offline


def print_soak(figures: SoakFigures, soak: Soak) -> list[str]:
    """Print the soak's figures; returns what failed its goals."""
    print()
    print(
        f"Soak: {figures.devices:,} devices, one heartbeat each every "
        f"{HEARTBEAT_EVERY_SECONDS:.0f} s, {soak.seconds} s, PostgreSQL + Redis, "
        f"`polaris serve --workers {soak.server_workers}` + `polaris worker`, Locust over "
        f"{soak.processes} processes, all on this machine"
    )
    rate = figures.devices / figures.seed_seconds if figures.seed_seconds else 0
    print(f"  seeding: {figures.seed_seconds:.1f} s ({rate:,.0f} devices/s)")
    print(
        f"  heartbeats: {figures.heartbeats:,} ({figures.heartbeat_per_second:,.0f}/s), "
        f"{figures.heartbeat_failures} failed, p50 {figures.heartbeat_p50_ms:.0f} ms, "
        f"p99 {figures.heartbeat_p99_ms:.0f} ms over the whole run"
    )
    steady = figures.steady_p99_ms
    if steady:
        print(
            f"  heartbeat p99 after the first {soak.ramp_seconds + HEARTBEAT_EVERY_SECONDS:.0f} s "
            "(per few-second window): "
            f"median {percentile(steady, 0.5):.0f} ms, worst {max(steady):.0f} ms"
        )
    print(f"  token exchanges: {figures.exchanges:,}, {figures.exchange_failures} failed")
    if figures.heartbeats:
        per_request = figures.server_cpu_seconds / (figures.heartbeats + figures.exchanges)
        print(f"  server CPU: {per_request * 1e6:,.0f} µs per request (all workers)")
    print(f"  online by the admin API at the end: {figures.online_at_end:,}")
    print(f"  presence in Redis: {figures.presence_bytes / 1e6:.1f} MB")
    print("  console at this fleet size:")
    print("    " + format_timings(figures.console).replace("\n", "\n    "))
    sweep = f"{figures.sweep_ms:.0f} ms" if figures.sweep_ms is not None else "not seen"
    print(
        f"  offline sweep: {figures.went_offline:,} went offline; longest pass {sweep} "
        "(the worker's own timing)"
    )
    for table, (rows, size) in figures.tables.items():
        per_row = f", {size / rows:,.0f} bytes per row" if rows else ""
        print(f"  table {table}: {rows:,} rows, {size / 1e6:,.1f} MB with indexes{per_row}")
    _print_cpu(figures)
    _print_model_check(figures, soak)
    failed = []
    if figures.heartbeat_failures or figures.exchange_failures:
        failed.append("requests failed")
    if figures.online_at_end != figures.devices:
        failed.append("not every device was online at the end")
    if steady and max(steady) >= 50:
        failed.append("heartbeat p99 reached 50 ms in the steady state")
    return failed


def _print_cpu(figures: SoakFigures) -> None:
    """Each process's CPU in the steady part, per heartbeat, and at the rate offered."""
    rate = figures.window_heartbeats_per_second
    if figures.cpu_window is None or rate <= 0:
        return
    start, end = figures.cpu_window
    offered = figures.devices / HEARTBEAT_EVERY_SECONDS
    print(
        f"  CPU by process from {start:.0f} s to {end:.0f} s ({rate:,.0f} heartbeats/s, "
        "token exchanges included), read from /proc:"
    )
    for name, cores in [*figures.cores.items(), ("all", sum(figures.cores.values()))]:
        print(f"    {name:<16} {cores:5.2f} cores {cores / rate * 1e6:6,.0f} µs per heartbeat")
    everything = sum(figures.cores.values()) / rate * offered
    service = sum(c for n, c in figures.cores.items() if n != "Locust") / rate * offered
    print(
        f"    at the {offered:,.0f}/s offered: {everything:.2f} cores in all, "
        f"{service:.2f} without Locust, of the {os.cpu_count()} this machine has"
    )


def _print_model_check(figures: SoakFigures, soak: Soak) -> None:
    """The capacity model's figures for this fleet next to what the soak measured."""
    model = needs(figures.devices, Costs())
    cores = figures.server_cpu_seconds / soak.seconds
    # A saturated box serves fewer heartbeats than offered: the model at the rate served.
    served = figures.heartbeat_per_second / model.heartbeats_per_s if model.heartbeats_per_s else 0
    print(f"  capacity model for {figures.devices:,} devices (loadtests/capacity.py) vs measured:")
    print(
        f"    heartbeats/s {model.heartbeats_per_s:,.0f} vs {figures.heartbeat_per_second:,.0f}; "
        f"app cores busy at the rate served {model.app_cores * TARGET_UTILISATION * served:.2f} "
        f"vs {cores:.2f} (the soak also trades every device's credentials from the database "
        "once, the model's steady state does not); "
        f"Redis presence {model.redis_mb:.1f} MB vs {figures.presence_bytes / 1e6:.1f} MB"
    )
