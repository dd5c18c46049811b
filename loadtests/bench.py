"""Heartbeat throughput: one Polaris worker against a bare Starlette JSON echo.

    python -m loadtests.bench [--duration 20] [--connections 64] [--devices 1000]
                              [--rounds 1] [--backend embedded|redis] [--compare-metrics]

Every server runs alone, with ONE uvicorn worker (uvloop + httptools), pinned to one CPU
while wrk (one thread) is pinned to another. All of them receive byte-identical requests:
the same headers, bearer tokens and heartbeat body. Polaris is driven only through its
public HTTP API: an admin signs in, mints a code per device, each device registers and
exchanges its credentials for an access token, and wrk cycles through those identities.

The bare echo is measured twice: as uvicorn serves an app by default (one access-log line
per request, like Polaris) and with uvicorn's access log switched off (the strictest
reference: no logging at all).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.cpus import Pinning, ProcessGroup, busy_elsewhere, plan_cpus
from loadtests.devices import access_tokens, pair_devices, shows_online
from loadtests.errors import BenchError
from loadtests.registration import RegistrationFigures, registration_latencies
from loadtests.scale import Soak, print_soak
from loadtests.servers import (
    BENCH_HEARTBEATS_PER_DEVICE,
    POSTGRES_URL,
    REDIS_URL,
    Polaris,
    Server,
    access_log_statuses,
    baseline,
)
from loadtests.wrk import (
    HEARTBEAT_SCRIPT,
    TOKEN_EXCHANGE_SCRIPT,
    Wrk,
    WrkResult,
    require_wrk,
    write_credentials,
    write_tokens,
)
from simulator.protocol import HEARTBEAT as HEARTBEAT_PATH
from simulator.protocol import TOKEN as TOKEN_PATH
from simulator.protocol import Credentials

BASELINE_LOGGED = "baseline echo, uvicorn defaults"
BASELINE_SILENT = "baseline echo, no access log"
HEARTBEAT = "Polaris heartbeat"
HEARTBEAT_NO_METRICS = "Polaris heartbeat, metrics off"
TOKEN_EXCHANGE = "Polaris token exchange"


@dataclass
class Figures:
    runs: dict[str, list[WrkResult]] = field(default_factory=dict)
    logged: Counter[int] = field(default_factory=Counter)
    online: bool = False
    registration: RegistrationFigures | None = None

    def add(self, name: str, result: WrkResult) -> None:
        self.runs.setdefault(name, []).append(result)

    def median(self, name: str) -> WrkResult:
        """The run with the median throughput (the lower middle one for an even count)."""
        ordered = sorted(self.runs[name], key=lambda r: r.per_second)
        return ordered[(len(ordered) - 1) // 2]


@dataclass
class Bench:
    args: argparse.Namespace
    wrk: Wrk
    polaris: Polaris
    figures: Figures = field(default_factory=Figures)
    devices: list[Credentials] = field(default_factory=list)
    email: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}@example.com")
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)

    @property
    def workdir(self) -> Path:
        return self.polaris.workdir

    @property
    def tokens(self) -> Path:
        return self.workdir / "tokens.txt"

    @property
    def credentials(self) -> Path:
        return self.workdir / "credentials.txt"

    def polaris_round(self, first: bool, last: bool) -> None:
        with self.polaris.serve() as server:
            if first:
                started = time.monotonic()
                self.devices = asyncio.run(
                    pair_devices(server.base_url, self.email, self.password, self.args.devices)
                )
                write_credentials(self.credentials, self.devices)
                print(
                    f"  paired {len(self.devices)} devices in {time.monotonic() - started:.1f} s",
                    flush=True,
                )
            self.heartbeats(server, HEARTBEAT)
            if last:
                self.figures.online = asyncio.run(
                    shows_online(
                        server.base_url, self.email, self.password, self.devices[0].device_id
                    )
                )
                if self.args.token_seconds:
                    result = self.wrk.run(
                        server.base_url + TOKEN_PATH,
                        TOKEN_EXCHANGE_SCRIPT,
                        self.credentials,
                        self.args.token_seconds,
                        server.pid,
                    )
                    self.figures.add(TOKEN_EXCHANGE, result)
                if self.args.registrations:
                    self.figures.registration = asyncio.run(
                        registration_latencies(
                            server.base_url,
                            self.email,
                            self.password,
                            count=self.args.registrations,
                            concurrency=self.args.registration_concurrency,
                            groups=self.registration_groups(server.pid),
                        )
                    )

    def registration_groups(self, server: int) -> list[ProcessGroup]:
        groups = [
            ProcessGroup("polaris serve", roots=(server,)),
            # This process is the registering client; the servers it started are counted apart.
            ProcessGroup("the client", roots=(os.getpid(),), with_children=False),
        ]
        if self.args.backend == "redis":
            groups += [
                ProcessGroup("PostgreSQL", command="postgres"),
                ProcessGroup("Redis", command="redis-server"),
            ]
        return groups

    def heartbeat_round_without_metrics(self) -> None:
        """The same heartbeats with METRICS_ENABLED=false: what counting them costs."""
        with self.polaris.serve(metrics=False) as server:
            self.heartbeats(server, HEARTBEAT_NO_METRICS)

    def heartbeats(self, server: Server, name: str) -> None:
        # Fresh access tokens every round: they live minutes, a benchmark may take longer.
        write_tokens(self.tokens, asyncio.run(access_tokens(server.base_url, self.devices)))
        self.measure(server.base_url + HEARTBEAT_PATH, server.pid, name)

    def baseline_round(self, name: str, access_log: bool) -> None:
        log = self.workdir / "baseline.log"
        with baseline(self.polaris.pinning, log, access_log=access_log) as server:
            # The echo gets the very requests the heartbeat got: same script, same tokens.
            self.measure(server.base_url + "/echo", server.pid, name)

    def measure(self, url: str, pid: int, name: str) -> None:
        """One wrk run of the heartbeat requests against `url`, kept under `name`."""
        result = self.wrk.run(url, HEARTBEAT_SCRIPT, self.tokens, self.args.duration, pid)
        self.figures.add(name, result)
        print(f"  {name}: {result.per_second:,.0f} req/s", flush=True)

    def run(self) -> None:
        self.polaris.prepare(self.email, self.password)
        for round_number in range(1, self.args.rounds + 1):
            print(f"Round {round_number} of {self.args.rounds}", flush=True)
            first, last = round_number == 1, round_number == self.args.rounds
            if first:
                print(f"  Polaris ({self.args.backend}): pairing {self.args.devices} devices …")
            # The run without metrics goes first on even rounds, so neither profits from
            # always following the other.
            without_first = self.args.compare_metrics and not first and round_number % 2 == 0
            if without_first:
                self.heartbeat_round_without_metrics()
            self.polaris_round(first=first, last=last)
            if self.args.compare_metrics and not without_first:
                self.heartbeat_round_without_metrics()
            self.baseline_round(BASELINE_LOGGED, access_log=True)
            self.baseline_round(BASELINE_SILENT, access_log=False)
        self.figures.logged = access_log_statuses(self.polaris.log, HEARTBEAT_PATH)


def row(name: str, result: WrkResult) -> str:
    return (
        f"{name:<34}{result.per_second:>9,.0f}{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}"
        f"{result.non_2xx:>9}{result.socket_errors:>8}{result.cpu_us_per_request:>12.0f}"
    )


def _print_ratios(args: argparse.Namespace, figures: Figures) -> None:
    heartbeat = figures.median(HEARTBEAT)
    for name in (BASELINE_LOGGED, BASELINE_SILENT):
        base = figures.median(name)
        ratio = heartbeat.per_second / base.per_second * 100
        cpu_ratio = base.cpu_us_per_request / max(1e-9, heartbeat.cpu_us_per_request) * 100
        print(
            f"Polaris heartbeat / {name}: {ratio:.0f} % of its req/s "
            f"({cpu_ratio:.0f} % by server CPU time per request)"
        )
    if HEARTBEAT_NO_METRICS in figures.runs:
        without = figures.median(HEARTBEAT_NO_METRICS)
        print(
            f"Polaris heartbeat with metrics / without: "
            f"{heartbeat.per_second / without.per_second * 100:.1f} % of its req/s "
            f"({without.cpu_us_per_request / max(1e-9, heartbeat.cpu_us_per_request) * 100:.1f} %"
            " by server CPU time per request)"
        )
    if TOKEN_EXCHANGE in figures.runs:
        token = figures.median(TOKEN_EXCHANGE)
        base = figures.median(BASELINE_LOGGED)
        print(
            f"Polaris token exchange / {BASELINE_LOGGED}: "
            f"{token.per_second / base.per_second * 100:.1f} % of its req/s "
            f"({base.cpu_us_per_request / max(1e-9, token.cpu_us_per_request) * 100:.1f} % by "
            "server CPU time per request)"
        )
    if args.rounds > 1:
        spread = [f"{r.per_second:,.0f}" for r in figures.runs[HEARTBEAT]]
        print(f"Polaris heartbeat req/s per round: {', '.join(spread)}")
    registration = figures.registration
    if registration is not None:
        print(
            f"Polaris registration (QR path), {registration.count} devices, "
            f"{registration.concurrency} in flight: {registration.per_second:,.0f} /s, "
            f"p50 {registration.p(0.50):.1f} ms, p99 {registration.p(0.99):.1f} ms, "
            f"max {max(registration.latencies_ms):.1f} ms"
        )
        print_registration_cpu(registration)


def print_registration_cpu(registration: RegistrationFigures) -> None:
    """Each process's CPU per registration, and the rate the machine's cores allow at it."""
    rate = registration.per_second
    if not registration.cores or rate <= 0:
        return
    parts = [
        f"{name} {cores / rate * 1e3:.1f} ms ({cores:.2f} cores)"
        for name, cores in registration.cores.items()
    ]
    per_registration = sum(registration.cores.values()) / rate
    cpus = os.cpu_count() or 1
    print(
        f"  CPU per registration: {', '.join(parts)}; {per_registration * 1e3:.1f} ms in all, "
        f"so at most {cpus / per_registration:,.0f}/s with all {cpus} cores busy"
    )


def report(args: argparse.Namespace, pinning: Pinning, figures: Figures, busy: float) -> int:
    """Print the table and the ratios; 1 if the run is invalid, 0 otherwise."""
    print()
    print(
        f"{args.duration} s per run after {args.warmup} s of warm-up, {args.connections} "
        f"connections, wrk with {args.threads} thread(s), one uvicorn worker per server, "
        f"{pinning.note}; backend {args.backend}, {args.devices} devices, "
        f"{args.rounds} round(s){', medians shown' if args.rounds > 1 else ''}."
    )
    print(
        f"HEARTBEATS_PER_DEVICE={BENCH_HEARTBEATS_PER_DEVICE} for this run: every heartbeat "
        "still passes the per-device limiter, but the benchmark measures throughput, not it."
    )
    print()
    print(
        f"{'':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'errors':>8}"
        f"{'CPU us/req':>12}"
    )
    for name in (BASELINE_LOGGED, BASELINE_SILENT, HEARTBEAT, HEARTBEAT_NO_METRICS, TOKEN_EXCHANGE):
        if name in figures.runs:
            print(row(name, figures.median(name)))
    print()
    _print_ratios(args, figures)
    logged = ", ".join(f"{status}: {count}" for status, count in sorted(figures.logged.items()))
    print(f"Polaris access log, heartbeat lines by status: {logged or 'none'}")
    print(f"A heartbeating device shows online to an admin: {'yes' if figures.online else 'NO'}")
    if busy > 0.1:
        print(
            f"Note: other processes used {busy:.0%} of the machine's CPU just before the run; "
            "absolute figures and ratios are noisy under such load.",
        )
    failures = []
    if any(r.non_2xx for r in figures.runs[HEARTBEAT]) or set(figures.logged) - {200}:
        failures.append("Polaris answered heartbeats with non-2xx statuses")
    if any(r.socket_errors for runs in figures.runs.values() for r in runs):
        failures.append("wrk saw socket errors or timeouts")
    if not figures.online:
        failures.append("heartbeats did not make the device show online")
    for failure in failures:
        print(f"INVALID RUN: {failure}", file=sys.stderr)
    return 1 if failures else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench", description=(__doc__ or "").split("\n\n", 1)[0]
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of unmeasured load first")
    parser.add_argument("--connections", type=int, default=64, help="open connections (wrk -c)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (wrk -t)")
    parser.add_argument("--devices", type=int, default=1000, help="paired devices to cycle")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the servers N times")
    parser.add_argument("--backend", choices=["embedded", "redis"], default="embedded")
    parser.add_argument("--redis-url", default=REDIS_URL, help="with --backend redis")
    parser.add_argument(
        "--database-url",
        help=f"default: SQLite in a temporary directory; {POSTGRES_URL} with --backend redis",
    )
    parser.add_argument(
        "--token-seconds", type=int, default=10, help="token-exchange run length (0 skips it)"
    )
    parser.add_argument(
        "--registrations",
        type=int,
        default=500,
        help="QR registrations timed in the last round (0 skips them)",
    )
    parser.add_argument(
        "--registration-concurrency", type=int, default=50, help="registrations in flight"
    )
    parser.add_argument(
        "--compare-metrics",
        action="store_true",
        help="also measure heartbeats with METRICS_ENABLED=false each round",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=0,
        metavar="N",
        help="instead of the rounds: the soak of N seeded devices on PostgreSQL + Redis",
    )
    parser.add_argument("--soak-seconds", type=int, default=420, help="with --scale")
    parser.add_argument("--locust-processes", type=int, default=2, help="with --scale")
    parser.add_argument("--locust-users", type=int, default=2000, help="with --scale")
    parser.add_argument(
        "--ramp-seconds", type=int, default=120, help="with --scale: users start over this long"
    )
    parser.add_argument(
        "--scale-workers", type=int, default=1, help="`polaris serve` workers with --scale"
    )
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="skip taskset")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    if min(args.devices, args.connections, args.threads, args.rounds, args.duration) < 1:
        parser.error("--devices, --connections, --threads, --rounds and --duration must be >= 1")
    # Access tokens are refreshed each round and live 10 minutes.
    if args.warmup + args.duration + args.token_seconds + 60 > 600:
        parser.error("a round must fit in an access token's lifetime (10 minutes)")
    return args


def soak(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="polaris-soak-"))
    run = Soak(
        workdir=workdir,
        devices=args.scale,
        seconds=args.soak_seconds,
        processes=args.locust_processes,
        users=args.locust_users,
        server_workers=args.scale_workers,
        ramp_seconds=args.ramp_seconds,
        postgres_url=args.database_url or POSTGRES_URL,
        redis_url=args.redis_url,
    )
    try:
        failed = print_soak(run.run(), run)
    finally:
        print(f"Work directory (logs, Locust CSV): {workdir}")
    for failure in failed:
        print(f"GOAL MISSED: {failure}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scale:
        try:
            return soak(args)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        wrk = require_wrk()
        pinning = plan_cpus(args.pin)
        busy = busy_elsewhere()
        workdir = Path(tempfile.mkdtemp(prefix="polaris-bench-"))
        load = Wrk(wrk, pinning.load, args.connections, args.threads, args.warmup)
        polaris = Polaris(
            workdir,
            pinning,
            args.backend,
            redis_url=args.redis_url,
            database_url=args.database_url,
        )
        bench = Bench(args, load, polaris)
        try:
            bench.run()
            return report(args, pinning, bench.figures, busy)
        finally:
            if args.keep:
                print(f"Work directory kept: {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
