"""wrk runs with the Lua scripts beside this file, their input files and their figures."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from loadtests.cpus import cpu_seconds
from loadtests.errors import BenchError
from simulator.protocol import Credentials

HERE = Path(__file__).resolve().parent
HEARTBEAT_SCRIPT = HERE / "heartbeat.lua"
TOKEN_EXCHANGE_SCRIPT = HERE / "token_exchange.lua"


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


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError(
            "wrk is not on PATH. Install it with `apt-get install wrk` (Debian/Ubuntu) or "
            "`brew install wrk` (macOS), then run the benchmark again."
        )
    return wrk


def write_tokens(path: Path, tokens: Iterable[str]) -> None:
    """heartbeat.lua's input: one access token per line."""
    path.write_text("".join(f"{token}\n" for token in tokens))


def write_credentials(path: Path, devices: Iterable[Credentials]) -> None:
    """token_exchange.lua's input: `deviceToken deviceSecret` per line."""
    path.write_text("".join(f"{d.device_token} {d.device_secret}\n" for d in devices))


@dataclass(frozen=True)
class Wrk:
    executable: str
    pin: list[str]
    connections: int
    threads: int
    warmup: int

    def run(self, url: str, script: Path, data_file: Path, seconds: int, server: int) -> WrkResult:
        """A warm-up run, then the measured one with the CPU time `server` (a pid) spent on it."""
        if self.warmup:
            self._once(url, script, data_file, self.warmup)
        before = cpu_seconds(server)
        result = self._once(url, script, data_file, seconds)
        return dataclasses.replace(result, cpu_seconds=cpu_seconds(server) - before)

    def _once(self, url: str, script: Path, data_file: Path, seconds: int) -> WrkResult:
        command = [
            *self.pin,
            self.executable,
            f"-t{self.threads}",
            f"-c{self.connections}",
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
