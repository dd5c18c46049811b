"""The servers the bench measures, each started as its own pinned process with one worker.

Polaris runs as `polaris serve`, never imported: the bench sees it only as a client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from redis import Redis

from loadtests.cpus import Pinning
from loadtests.errors import BenchError

ROOT = Path(__file__).resolve().parent.parent
# High enough that the per-device limiter is exercised on every heartbeat but never refuses
# one: a 429 would be cheaper than a real heartbeat and flatter the figures.
BENCH_HEARTBEATS_PER_DEVICE = "100000/minute"
REDIS_URL = "redis://127.0.0.1:6379/13"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/bench_db"


@dataclass(frozen=True)
class Server:
    base_url: str
    pid: int


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


async def fresh_database(database_url: str) -> None:
    """Drop and create the database `database_url` names: the bench's own, never a user's
    (a database left by an earlier run holds keys sealed with another run's secret)."""
    await _on_its_server(
        database_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", "CREATE DATABASE {}"
    )


async def drop_database(database_url: str) -> None:
    await _on_its_server(database_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)")


async def _on_its_server(database_url: str, *statements: str) -> None:
    """Run `statements` on the server of `database_url`, each with its database's name."""
    server, name = database_url.split("?", 1)[0].rsplit("/", 1)
    connection = await asyncpg.connect(
        f"{server}/postgres".replace("postgres://", "postgresql://", 1)
    )
    try:
        for statement in statements:
            await connection.execute(statement.format(f'"{name}"'))
    finally:
        await connection.close()


def polaris_command() -> list[str]:
    script = Path(sys.executable).with_name("polaris")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def polaris_env(workdir: Path, secret_key: str, port: int) -> dict[str, str]:
    """The environment of a Polaris of the load tools' own: this machine's, less any Polaris
    or database settings of the caller's, plus a data directory and secret of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLARIS_", "DATABASE_"))}
    env.update(
        POLARIS_ENV="development",
        POLARIS_DATA_DIR=str(workdir / "data"),
        SECRET_KEY=secret_key,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        LOG_LEVEL="INFO",
        LOG_JSON="true",
    )
    return env


@dataclass
class Polaris:
    """A Polaris deployment of its own: fresh data directory, database and secret key."""

    workdir: Path
    pinning: Pinning
    backend: str
    redis_url: str = REDIS_URL
    database_url: str | None = None
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48), repr=False)

    @property
    def log(self) -> Path:
        return self.workdir / "polaris.log"

    def env(self, port: int) -> dict[str, str]:
        env = polaris_env(self.workdir, self.secret_key, port)
        env["HEARTBEATS_PER_DEVICE"] = BENCH_HEARTBEATS_PER_DEVICE
        if self.backend == "redis":
            env["REDIS_URL"] = self.redis_url
            env["DATABASE_URL"] = self.database_url or POSTGRES_URL
        else:
            env.pop("REDIS_URL", None)
            env["DATABASE_URL"] = self.database_url or f"sqlite://{self.workdir / 'db.sqlite'}"
        return env

    def prepare(self, email: str, password: str) -> None:
        """Migrate the database and create the admin who will mint the pairing codes."""
        env = self.env(0)
        if self.backend == "redis":
            asyncio.run(fresh_database(env["DATABASE_URL"]))
            Redis.from_url(self.redis_url).flushdb()
        polaris = polaris_command()
        run_checked([*polaris, "migrate"], env, "polaris migrate")
        run_checked(
            [*polaris, "create-admin", "--email", email, "--password", password],
            env,
            "polaris create-admin",
        )

    @contextlib.contextmanager
    def serve(self, *, metrics: bool = True) -> Iterator[Server]:
        port = free_port()
        command = [
            *self.pinning.server,
            *polaris_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        env = {**self.env(port), "METRICS_ENABLED": "true" if metrics else "false"}
        with running(command, port=port, env=env, log=self.log, cwd=self.workdir) as process:
            yield Server(f"http://127.0.0.1:{port}", process.pid)


@contextlib.contextmanager
def baseline(pinning: Pinning, log: Path, *, access_log: bool) -> Iterator[Server]:
    """The bare Starlette echo (baseline_app.py), served by uvicorn as it serves any app."""
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
        "--no-server-header",
        "--no-proxy-headers",
        "--access-log" if access_log else "--no-access-log",
    ]
    with running(command, port=port, env=dict(os.environ), log=log, cwd=ROOT) as process:
        yield Server(f"http://127.0.0.1:{port}", process.pid)


def access_log_statuses(log: Path, path: str) -> Counter[int]:
    """Statuses of the requests to `path` in Polaris's JSON access log, by count."""
    statuses: Counter[int] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("event") == "request" and entry.get("path") == path:
                statuses[int(entry["status"])] += 1
    return statuses
