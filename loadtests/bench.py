"""Heartbeat throughput: one Polaris worker against a bare Starlette JSON echo.

    python -m loadtests.bench [--duration 20] [--connections 64] [--devices 1000]
                              [--backend embedded|redis]

Each server runs alone with ONE uvicorn worker (uvloop + httptools), pinned to one CPU while
wrk (one thread) is pinned to another. Both receive byte-identical requests: the same
headers, bearer token and heartbeat body. Polaris is driven only through its public HTTP
API: an admin signs in, mints a code per device, each device registers and exchanges its
credentials for an access token, and wrk cycles through those identities.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
HEARTBEAT_PATH = "/api/devices/heartbeat"
TOKEN_PATH = "/api/devices/token"
# High enough that the per-device limiter is exercised on every heartbeat but never refuses
# one: a 429 would be cheaper than a real heartbeat and flatter the figures.
BENCH_HEARTBEATS_PER_DEVICE = "100000/minute"
ACCESS_TOKEN_LIFETIME_SECONDS = 600
REDIS_URL = "redis://127.0.0.1:6379/13"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/bench_db"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class Device:
    device_id: str
    device_token: str
    device_secret: str
    access_token: str


class BenchError(RuntimeError):
    pass


# -- processes --------------------------------------------------------------------------------


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError(
            "wrk is not on PATH. Install it with `apt-get install wrk` (Debian/Ubuntu) or "
            "`brew install wrk` (macOS), then run the benchmark again."
        )
    return wrk


@dataclass(frozen=True)
class Pinning:
    server: list[str]
    load: list[str]
    note: str


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
    with log.open("wb") as sink:
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


def run_wrk(
    wrk: str,
    *,
    url: str,
    script: Path,
    data_file: Path,
    connections: int,
    threads: int,
    seconds: int,
    pinning: Pinning,
) -> WrkResult:
    command = [
        *pinning.load,
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
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


# -- pairing over the public API --------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


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
    _, challenge = pkce_pair()
    registered = await device.post(
        "/api/devices/register",
        json={
            "code": query["code"][0],
            "pairingProof": query["proof"][0],
            "codeChallenge": challenge,
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
    issued = await device.post(
        TOKEN_PATH,
        json={"deviceToken": creds["deviceToken"], "deviceSecret": creds["deviceSecret"]},
    )
    if issued.status_code != 200:
        raise BenchError(f"token exchange failed: {issued.status_code} {issued.text}")
    return Device(
        creds["deviceId"], creds["deviceToken"], creds["deviceSecret"], issued.json()["accessToken"]
    )


async def pair_devices(base_url: str, email: str, password: str, count: int) -> list[Device]:
    limits = httpx.Limits(max_connections=8)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as admin,
        httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as device,
    ):
        csrf = await sign_in(admin, email, password)
        gate = asyncio.Semaphore(8)

        async def one(index: int) -> Device:
            async with gate:
                return await pair_one(admin, device, csrf, index)

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def wait_until_online(
    base_url: str, email: str, password: str, device_id: str, timeout: float
) -> bool:
    """The heartbeats reached presence and the last-seen flush, as an admin sees it."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as admin:
        await sign_in(admin, email, password)
        deadline = time.monotonic() + timeout
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


def polaris_env(args: argparse.Namespace, workdir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLARIS_", "DATABASE_"))}
    env.update(
        POLARIS_ENV="development",
        POLARIS_DATA_DIR=str(workdir / "data"),
        SECRET_KEY=secrets.token_urlsafe(48),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        HEARTBEATS_PER_DEVICE=BENCH_HEARTBEATS_PER_DEVICE,
        ACCESS_TOKEN_LIFETIME_SECONDS=str(ACCESS_TOKEN_LIFETIME_SECONDS),
        LOG_LEVEL="INFO",
        LOG_JSON="true",
    )
    if args.backend == "redis":
        env["REDIS_URL"] = args.redis_url
        env["DATABASE_URL"] = args.database_url or POSTGRES_URL
    else:
        env.pop("REDIS_URL", None)
        env["DATABASE_URL"] = args.database_url or f"sqlite://{workdir / 'polaris.db'}"
    return env


def polaris_command() -> list[str]:
    script = Path(sys.executable).with_name("polaris")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def measure_baseline(
    args: argparse.Namespace, wrk: str, pinning: Pinning, workdir: Path, tokens: Path
) -> WrkResult:
    port = free_port()
    command = [
        *pinning.server,
        sys.executable,
        "-m",
        "uvicorn",
        "loadtests.baseline_app:app",
        "--host",
        "127.0.0.1",
        f"--port={port}",
        "--workers=1",
        "--no-access-log",
        "--no-server-header",
        "--log-level=warning",
    ]
    env = dict(os.environ)
    with running(command, port=port, env=env, log=workdir / "baseline.log", cwd=ROOT):
        return load(args, wrk, pinning, f"http://127.0.0.1:{port}/echo", "heartbeat.lua", tokens)


def load(
    args: argparse.Namespace,
    wrk: str,
    pinning: Pinning,
    url: str,
    script: str,
    data_file: Path,
    seconds: int | None = None,
) -> WrkResult:
    common = {
        "url": url,
        "script": HERE / script,
        "data_file": data_file,
        "connections": args.connections,
        "threads": args.threads,
        "pinning": pinning,
    }
    if args.warmup:
        run_wrk(wrk, seconds=args.warmup, **common)  # type: ignore[arg-type]
    return run_wrk(wrk, seconds=seconds or args.duration, **common)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PolarisFigures:
    heartbeat: WrkResult
    token_exchange: WrkResult | None
    logged: Counter[int]
    online: bool
    pairing_seconds: float


def measure_polaris(
    args: argparse.Namespace, wrk: str, pinning: Pinning, workdir: Path, tokens: Path
) -> PolarisFigures:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = polaris_env(args, workdir, port)
    email, password = f"bench-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
    polaris = polaris_command()
    run_checked([*polaris, "migrate"], env, "polaris migrate")
    run_checked(
        [*polaris, "create-admin", "--email", email, "--password", password],
        env,
        "polaris create-admin",
    )
    log = workdir / "polaris.log"
    command = [*pinning.server, *polaris, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, port=port, env=env, log=log, cwd=workdir):
        started = time.monotonic()
        devices = asyncio.run(pair_devices(base_url, email, password, args.devices))
        pairing_seconds = time.monotonic() - started
        tokens.write_text("".join(f"{d.access_token}\n" for d in devices))
        credentials = workdir / "credentials.txt"
        credentials.write_text("".join(f"{d.device_token} {d.device_secret}\n" for d in devices))
        print(f"  paired {len(devices)} devices in {pairing_seconds:.1f} s", flush=True)

        heartbeat = load(args, wrk, pinning, base_url + HEARTBEAT_PATH, "heartbeat.lua", tokens)
        online = asyncio.run(wait_until_online(base_url, email, password, devices[0].device_id, 30))
        token_exchange = None
        if args.token_seconds:
            token_exchange = load(
                args,
                wrk,
                pinning,
                base_url + TOKEN_PATH,
                "token_exchange.lua",
                credentials,
                seconds=args.token_seconds,
            )
    return PolarisFigures(
        heartbeat, token_exchange, access_log_statuses(log, HEARTBEAT_PATH), online, pairing_seconds
    )


def row(name: str, result: WrkResult) -> str:
    return (
        f"{name:<24}{result.per_second:>10,.0f}{result.p50_ms:>10.2f}{result.p99_ms:>10.2f}"
        f"{result.non_2xx:>10}{result.socket_errors:>10}"
    )


def report(args: argparse.Namespace, pinning: Pinning, base: WrkResult, p: PolarisFigures) -> int:
    ratio = p.heartbeat.per_second / base.per_second * 100
    print()
    print(
        f"{args.duration} s per run after {args.warmup} s of warm-up, {args.connections} "
        f"connections, wrk with {args.threads} thread(s), one uvicorn worker per server, "
        f"{pinning.note}; backend {args.backend}, {args.devices} devices."
    )
    print(
        f"HEARTBEATS_PER_DEVICE={BENCH_HEARTBEATS_PER_DEVICE} for this run: every heartbeat "
        "still passes the per-device limiter, but the benchmark measures throughput, not it."
    )
    print()
    print(f"{'':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}{'errors':>10}")
    print(row("baseline echo", base))
    print(row("Polaris heartbeat", p.heartbeat))
    if p.token_exchange is not None:
        print(row("Polaris token exchange", p.token_exchange))
    print()
    print(f"Polaris heartbeat / baseline echo: {ratio:.0f} %")
    logged = ", ".join(f"{status}: {count}" for status, count in sorted(p.logged.items()))
    print(f"Polaris access log, heartbeat lines by status: {logged or 'none'}")
    print(f"A heartbeating device shows online to an admin: {'yes' if p.online else 'NO'}")
    failures = []
    if p.heartbeat.non_2xx or any(status != 200 for status in p.logged):
        failures.append("Polaris answered heartbeats with non-2xx statuses")
    if p.heartbeat.socket_errors or base.socket_errors:
        failures.append("wrk saw socket errors or timeouts")
    if not p.online:
        failures.append("heartbeats did not make the device show online")
    for failure in failures:
        print(f"INVALID RUN: {failure}", file=sys.stderr)
    return 1 if failures else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench", description=__doc__.split("\n\n", 1)[0]
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of unmeasured load first")
    parser.add_argument("--connections", type=int, default=64, help="open connections (wrk -c)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (wrk -t)")
    parser.add_argument("--devices", type=int, default=1000, help="paired devices to cycle")
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
    if args.warmup + args.duration + args.token_seconds + 120 > ACCESS_TOKEN_LIFETIME_SECONDS:
        parser.error("the runs must fit in the access tokens' lifetime (600 s)")
    if args.devices < 1 or args.connections < 1 or args.threads < 1:
        parser.error("--devices, --connections and --threads must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        wrk = require_wrk()
        pinning = plan_cpus(args.pin)
        workdir = Path(tempfile.mkdtemp(prefix="polaris-bench-"))
        tokens = workdir / "tokens.txt"
        try:
            print(f"Polaris ({args.backend}): pairing {args.devices} devices …", flush=True)
            polaris = measure_polaris(args, wrk, pinning, workdir, tokens)
            print("Baseline: bare Starlette echo …", flush=True)
            base = measure_baseline(args, wrk, pinning, workdir, tokens)
            return report(args, pinning, base, polaris)
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
