"""A real `polaris serve` process for end-to-end and browser tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
POLARIS = [sys.executable, "-m", "app.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(workdir: Path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("POLARIS_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY"))
    }
    env.update(
        {
            "DATABASE_URL": f"sqlite://{workdir / 'polaris.db'}",
            "POLARIS_DATA_DIR": str(workdir / "data"),
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def run_cli(
    args: list[str], env: dict[str, str], *, input_text: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POLARIS, *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        input=input_text,
        timeout=timeout,
        check=False,
    )


@dataclass
class ChildProcess:
    """A `polaris` subcommand in its own process group; output goes to a file in `workdir`."""

    workdir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    def spawn(self, args: list[str], env: dict[str, str]) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*POLARIS, *args],
                env=env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{what} exited early:\n{self.output()}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{what} did not become ready:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


@dataclass
class ServerProcess(ChildProcess):
    """`polaris serve`, ready once `/healthz` answers."""

    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"server-{self.port}.log"

    def start(self, timeout: float = 30) -> ServerProcess:
        self.spawn(
            ["serve", "--host", "127.0.0.1", "--port", str(self.port)],
            {**self.env, "PUBLIC_BASE_URL": self.env.get("PUBLIC_BASE_URL", self.url)},
        )
        self.wait_until(self._healthy, timeout, "server")
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def first_admin(self) -> tuple[str, str]:
        text = self.output()
        email = re.search(r"Email\s+(\S+)", text)
        password = re.search(r"Password\s+(\S+)", text)
        if not email or not password:
            raise AssertionError(f"no first-admin credentials printed:\n{text}")
        return email.group(1), password.group(1)


@dataclass
class WorkerProcess(ChildProcess):
    """`polaris worker` (arq), ready once it has logged its start."""

    @property
    def log_path(self) -> Path:
        return self.workdir / "worker.log"

    def start(self, timeout: float = 30) -> WorkerProcess:
        self.spawn(["worker"], self.env)
        self.wait_until(lambda: "worker_started" in self.output(), timeout, "worker")
        return self
