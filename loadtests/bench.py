"""Heartbeat throughput: one Polaris worker against a bare Starlette JSON echo.

    python -m loadtests.bench [--duration 20] [--connections 64] [--devices 1000]
                              [--rounds 1] [--backend embedded|redis]

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
import base64
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
T = TypeVar("T")
HEARTBEAT_PATH = "/api/devices/heartbeat"
TOKEN_PATH = "/api/devices/token"
# High enough that the per-device limiter is exercised on every heartbeat but never refuses
# one: a 429 would be cheaper than a real heartbeat and flatter the figures.
BENCH_HEARTBEATS_PER_DEVICE = "100000/minute"
REDIS_URL = "redis://127.0.0.1:6379/13"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/bench_db"
BASELINE_LOGGED = "baseline echo, uvicorn defaults"
BASELINE_SILENT = "baseline echo, no access log"
HEARTBEAT = "Polaris heartbeat"
TOKEN_EXCHANGE = "Polaris token exchange"


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    cpu_seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / max(1, self.requests) * 1e6


@dataclass(frozen=True)
class Device:
    device_id: str
    device_token: str
    device_secret: str


@dataclass(frozen=True)
class Pinning:
    server: list[str]
    load: list[str]
    note: str


@dataclass
class Figures:
    runs: dict[str, list[WrkResult]] = field(default_factory=dict)
    logged: Counter[int] = field(default_factory=Counter)
    online: bool = False

    def add(self, name: str, result: WrkResult) -> None:
        self.runs.setdefault(name, []).append(result)

    def median(self, name: str) -> WrkResult:
        """The run with the median throughput (the lower middle one for an even count)."""
        ordered = sorted(self.runs[name], key=lambda r: r.per_second)
        return ordered[(len(ordered) - 1) // 2]


# -- processes --------------------------------------------------------------------------------


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError(
            "wrk is not on PATH. Install it with `apt-get install wrk` (Debian/Ubuntu) or "
            "`brew install wrk` (macOS), then run the benchmark again."
        )
    return wrk


def plan_cpus(enabled: bool) -> Pinning:
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
        return Pinning([], [], "not pinned")
    server_cpu, load_cpu = cpus[-1], cpus[0]
    return Pinning(
        ["taskset", "-c", str(server_cpu)],
        ["taskset", "-c", str(load_cpu)],
        f"server pinned to CPU {server_cpu}, wrk to CPU {load_cpu} (taskset)",
    )


def busy_elsewhere(seconds: float = 1.0) -> float:
    """CPU share (0 to 1, whole machine) used while this process sleeps: other load skews runs."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    with contextlib.suppress(OSError, ValueError, IndexError):
        busy_before, total_before = sample()
        time.sleep(seconds)
        busy_after, total_after = sample()
        return (busy_after - busy_before) / max(1, total_after - total_before)
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux; 0 elsewhere)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server exited with {process.returncode}; see {log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise BenchError(f"the server did not listen on port {port} within {timeout:.0f} s")


@contextlib.contextmanager
def running(
    command: list[str], *, port: int, env: dict[str, str], log: Path, cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as sink:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, process, log, timeout=60)
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def run_checked(command: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"{what} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


@dataclass(frozen=True)
class Load:
    wrk: str
    pinning: Pinning
    connections: int
    threads: int
    warmup: int

    def run(self, url: str, script: str, data_file: Path, seconds: int, server: int) -> WrkResult:
        if self.warmup:
            self._once(url, script, data_file, self.warmup)
        before = cpu_seconds(server)
        result = self._once(url, script, data_file, seconds)
        return dataclasses.replace(result, cpu_seconds=cpu_seconds(server) - before)

    def _once(self, url: str, script: str, data_file: Path, seconds: int) -> WrkResult:
        command = [
            *self.pinning.load,
            self.wrk,
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(HERE / script),
            url,
            "--",
            str(data_file),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
        if done.returncode != 0 or line is None:
            raise BenchError(f"wrk failed:\n{done.stdout}{done.stderr}")
        raw = json.loads(line.removeprefix("WRK_RESULT "))
        return WrkResult(
            requests=raw["requests"],
            seconds=raw["duration_us"] / 1e6,
            p50_ms=raw["p50_us"] / 1000,
            p99_ms=raw["p99_us"] / 1000,
            non_2xx=raw["status"],
            socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        )


# -- the public API, as a scanner app and an admin use it -------------------------------------


def pkce_challenge() -> str:
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> str:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    if response.status_code != 200:
        raise BenchError(f"sign-in failed: {response.status_code} {response.text}")
    return str(response.json()["csrfToken"])


async def pair_one(
    admin: httpx.AsyncClient, device: httpx.AsyncClient, csrf: str, index: int
) -> Device:
    minted = await admin.post("/api/v1/admin/pairing-sessions", headers={"X-CSRF-Token": csrf})
    if minted.status_code != 201:
        raise BenchError(f"minting a code failed: {minted.status_code} {minted.text}")
    query = parse_qs(urlsplit(minted.json()["pairingUri"]).query)
    registered = await device.post(
        "/api/devices/register",
        json={
            "code": query["code"][0],
            "pairingProof": query["proof"][0],
            "codeChallenge": pkce_challenge(),
            "label": f"Bench scanner {index:05d}",
            "platform": "ios",
            "model": "iPhone15,2",
            "osVersion": "17.5",
            "appVersion": "2.4.0",
            "apnsEnvironment": "production",
            "capabilities": ["scan", "push"],
        },
    )
    if registered.status_code != 201:
        raise BenchError(f"registering failed: {registered.status_code} {registered.text}")
    creds = registered.json()
    return Device(creds["deviceId"], creds["deviceToken"], creds["deviceSecret"])


async def access_token(client: httpx.AsyncClient, device: Device) -> str:
    issued = await client.post(
        TOKEN_PATH, json={"deviceToken": device.device_token, "deviceSecret": device.device_secret}
    )
    if issued.status_code != 200:
        raise BenchError(f"token exchange failed: {issued.status_code} {issued.text}")
    return str(issued.json()["accessToken"])


async def _gathered(count: int, work: Callable[[int], Awaitable[T]]) -> list[T]:
    gate = asyncio.Semaphore(8)

    async def one(index: int) -> T:
        async with gate:
            return await work(index)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def pair_devices(base_url: str, email: str, password: str, count: int) -> list[Device]:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as admin,
        httpx.AsyncClient(base_url=base_url, timeout=30) as device,
    ):
        csrf = await sign_in(admin, email, password)
        return await _gathered(count, lambda i: pair_one(admin, device, csrf, i))


async def access_tokens(base_url: str, devices: list[Device]) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        return await _gathered(len(devices), lambda i: access_token(client, devices[i]))


async def shows_online(base_url: str, email: str, password: str, device_id: str) -> bool:
    """The heartbeats reached presence and the last-seen flush, as an admin sees it."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as admin:
        await sign_in(admin, email, password)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            shown = await admin.get(f"/api/v1/admin/devices/{device_id}")
            if shown.status_code == 200 and shown.json().get("online") is True:
                return True
            await asyncio.sleep(1)
    return False


def access_log_statuses(log: Path, path: str) -> Counter[int]:
    statuses: Counter[int] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("event") == "request" and entry.get("path") == path:
                statuses[int(entry["status"])] += 1
    return statuses


# -- the benchmark ----------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    load: Load
    pinning: Pinning
    workdir: Path
    figures: Figures = field(default_factory=Figures)
    devices: list[Device] = field(default_factory=list)
    email: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}@example.com")
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    @property
    def tokens(self) -> Path:
        return self.workdir / "tokens.txt"

    @property
    def credentials(self) -> Path:
        return self.workdir / "credentials.txt"

    @property
    def polaris_log(self) -> Path:
        return self.workdir / "polaris.log"

    def polaris_env(self, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POLARIS_", "DATABASE_"))}
        env.update(
            POLARIS_ENV="development",
            POLARIS_DATA_DIR=str(self.workdir / "data"),
            SECRET_KEY=self.secret_key,
            PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
            HEARTBEATS_PER_DEVICE=BENCH_HEARTBEATS_PER_DEVICE,
            LOG_LEVEL="INFO",
            LOG_JSON="true",
        )
        if self.args.backend == "redis":
            env["REDIS_URL"] = self.args.redis_url
            env["DATABASE_URL"] = self.args.database_url or POSTGRES_URL
        else:
            env.pop("REDIS_URL", None)
            env["DATABASE_URL"] = self.args.database_url or f"sqlite://{self.workdir / 'db.sqlite'}"
        return env

    @functools.cached_property
    def secret_key(self) -> str:
        return secrets.token_urlsafe(48)

    def prepare_polaris(self) -> None:
        env = self.polaris_env(0)
        polaris = polaris_command()
        run_checked([*polaris, "migrate"], env, "polaris migrate")
        run_checked(
            [*polaris, "create-admin", "--email", self.email, "--password", self.password],
            env,
            "polaris create-admin",
        )

    def polaris_round(self, first: bool, last: bool) -> None:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        command = [
            *self.pinning.server,
            *polaris_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        env = self.polaris_env(port)
        with running(command, port=port, env=env, log=self.polaris_log, cwd=self.workdir) as server:
            if first:
                started = time.monotonic()
                self.devices = asyncio.run(
                    pair_devices(base_url, self.email, self.password, self.args.devices)
                )
                self.credentials.write_text(
                    "".join(f"{d.device_token} {d.device_secret}\n" for d in self.devices)
                )
                print(
                    f"  paired {len(self.devices)} devices in {time.monotonic() - started:.1f} s",
                    flush=True,
                )
            # Fresh access tokens every round: they live minutes, a benchmark may take longer.
            tokens = asyncio.run(access_tokens(base_url, self.devices))
            self.tokens.write_text("".join(f"{t}\n" for t in tokens))
            result = self.load.run(
                base_url + HEARTBEAT_PATH,
                "heartbeat.lua",
                self.tokens,
                self.args.duration,
                server.pid,
            )
            self.figures.add(HEARTBEAT, result)
            print(f"  {HEARTBEAT}: {result.per_second:,.0f} req/s", flush=True)
            if last:
                self.figures.online = asyncio.run(
                    shows_online(base_url, self.email, self.password, self.devices[0].device_id)
                )
                if self.args.token_seconds:
                    result = self.load.run(
                        base_url + TOKEN_PATH,
                        "token_exchange.lua",
                        self.credentials,
                        self.args.token_seconds,
                        server.pid,
                    )
                    self.figures.add(TOKEN_EXCHANGE, result)

    def baseline_round(self, name: str, access_log: bool) -> None:
        port = free_port()
        command = [
            *self.pinning.server,
            sys.executable,
            "-m",
            "uvicorn",
            "loadtests.baseline_app:app",
            "--host",
            "127.0.0.1",
            f"--port={port}",
            "--workers=1",
            "--no-server-header",
            "--no-proxy-headers",
            "--access-log" if access_log else "--no-access-log",
        ]
        log = self.workdir / "baseline.log"
        with running(command, port=port, env=dict(os.environ), log=log, cwd=ROOT) as server:
            result = self.load.run(
                f"http://127.0.0.1:{port}/echo",
                "heartbeat.lua",
                self.tokens,
                self.args.duration,
                server.pid,
            )
        self.figures.add(name, result)
        print(f"  {name}: {result.per_second:,.0f} req/s", flush=True)

    def run(self) -> None:
        self.prepare_polaris()
        for round_number in range(1, self.args.rounds + 1):
            print(f"Round {round_number} of {self.args.rounds}", flush=True)
            first, last = round_number == 1, round_number == self.args.rounds
            if first:
                print(f"  Polaris ({self.args.backend}): pairing {self.args.devices} devices …")
            self.polaris_round(first=first, last=last)
            self.baseline_round(BASELINE_LOGGED, access_log=True)
            self.baseline_round(BASELINE_SILENT, access_log=False)
        self.figures.logged = access_log_statuses(self.polaris_log, HEARTBEAT_PATH)


def polaris_command() -> list[str]:
    script = Path(sys.executable).with_name("polaris")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def row(name: str, result: WrkResult) -> str:
    return (
        f"{name:<34}{result.per_second:>9,.0f}{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}"
        f"{result.non_2xx:>9}{result.socket_errors:>8}{result.cpu_us_per_request:>12.0f}"
    )


def report(args: argparse.Namespace, pinning: Pinning, figures: Figures, busy: float) -> int:
    heartbeat = figures.median(HEARTBEAT)
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
    for name in (BASELINE_LOGGED, BASELINE_SILENT, HEARTBEAT, TOKEN_EXCHANGE):
        if name in figures.runs:
            print(row(name, figures.median(name)))
    print()
    for name in (BASELINE_LOGGED, BASELINE_SILENT):
        base = figures.median(name)
        ratio = heartbeat.per_second / base.per_second * 100
        cpu_ratio = base.cpu_us_per_request / max(1e-9, heartbeat.cpu_us_per_request) * 100
        print(
            f"Polaris heartbeat / {name}: {ratio:.0f} % of its req/s "
            f"({cpu_ratio:.0f} % by server CPU time per request)"
        )
    if args.rounds > 1:
        spread = [f"{r.per_second:,.0f}" for r in figures.runs[HEARTBEAT]]
        print(f"Polaris heartbeat req/s per round: {', '.join(spread)}")
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
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="skip taskset")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    if min(args.devices, args.connections, args.threads, args.rounds, args.duration) < 1:
        parser.error("--devices, --connections, --threads, --rounds and --duration must be >= 1")
    # Access tokens are refreshed each round and live 10 minutes.
    if args.warmup + args.duration + args.token_seconds + 60 > 600:
        parser.error("a round must fit in an access token's lifetime (10 minutes)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        wrk = require_wrk()
        pinning = plan_cpus(args.pin)
        busy = busy_elsewhere()
        workdir = Path(tempfile.mkdtemp(prefix="polaris-bench-"))
        load = Load(wrk, pinning, args.connections, args.threads, args.warmup)
        bench = Bench(args, load, pinning, workdir)
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
