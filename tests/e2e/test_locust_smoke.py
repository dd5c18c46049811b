"""Every Locust user of loadtests/locustfile.py, a few seconds each, against a real server:
the hot paths over a fleet the simulator seeds (the heartbeats over two processes), pairing
by QR code and by typed code, and the mixed fleet with and without its rare events. Each
run is headless, writes Locust's CSV files, and is judged by them: the endpoints it plays
were called, and no request failed. Then the CSV history is plotted.

The runs go side by side (they wait on the server far more than they compute), so the
whole file costs one run's time plus the server's start and the seeding.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import REPO_ROOT, ServerProcess, base_env, free_port
from tests.png import png_size

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

# Long enough for a typed pairing (two poll intervals) after a slow sign-in on a busy machine.
RUN_SECONDS = 8
SERVER_ENV = {
    # A typed pairing polls twice, an interval apart: a short one fits it in a short run.
    "PAIRING_POLL_INTERVAL_SECONDS": "1",
    # Each redemption, successful or not, spends one of this budget (200 a minute).
    "REDEEM_FAILURES_GLOBAL": "100000/minute",
}
SEEDED_DEVICES = 12
# Devices per user and pace such that no device nears its heartbeat budget (12 a minute),
# whichever runs share it.
PACE = ("--heartbeat-every", "4", "--devices-per-user", "3")

HEARTBEAT = ("POST", "/api/devices/heartbeat")
TOKEN = ("POST", "/api/devices/token")
REGISTER = ("POST", "/api/devices/register")
POLL = ("POST", "/api/devices/register/poll")
PUSH_TOKEN = ("PUT", "/api/devices/push-token")
ROTATE = ("POST", "/api/devices/credentials/rotate")
LOGIN = ("POST", "/api/v1/auth/login")
MINT = ("POST", "/api/v1/admin/pairing-sessions")
CHECK = ("GET", "/api/v1/admin/pairing-sessions/{pairingSessionId}")
APPROVE = ("POST", "/api/v1/admin/pairing-sessions/{pairingSessionId}/approve")
DEREGISTER = ("DELETE", "/api/v1/admin/devices/{deviceId}")


@dataclass(frozen=True)
class Run:
    name: str
    # User classes, tags, and any other options of this run.
    args: tuple[str, ...]
    # The requests (method, path template) it must have made.
    made: tuple[tuple[str, str], ...]


RUNS = (
    # Two workers of one user each, every user asking for the whole fleet: each plays the
    # share of its process, and within the run's first seconds every device of it.
    Run(
        "heartbeat",
        (
            *("HeartbeatingDevices", "--processes", "2"),
            *("--devices-per-user", str(SEEDED_DEVICES), "--heartbeat-every", "2"),
        ),
        (HEARTBEAT, TOKEN),
    ),
    Run("token", ("ExchangingTokens",), (TOKEN,)),
    Run(
        "scanned",
        ("PairingDevice", "--tags", "scanned"),
        (LOGIN, MINT, REGISTER, TOKEN, HEARTBEAT, DEREGISTER),
    ),
    Run(
        "typed",
        ("PairingDevice", "--tags", "typed"),
        (LOGIN, MINT, REGISTER, POLL, CHECK, APPROVE, TOKEN, HEARTBEAT),
    ),
    Run("mixed", ("MixedFleet",), (LOGIN, HEARTBEAT, TOKEN)),
    Run(
        "mixed-rare",
        ("MixedFleet", "--tags", "push-token", "rotation"),
        (MINT, REGISTER, PUSH_TOKEN, ROTATE, TOKEN),
    ),
)


@dataclass(frozen=True)
class Finished:
    run: Run
    returncode: int
    output: str
    prefix: Path

    def stats(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(method, name) -> (requests, failures), from `<prefix>_stats.csv`."""
        with Path(f"{self.prefix}_stats.csv").open(newline="") as handle:
            return {
                (row["Type"], row["Name"]): (int(row["Request Count"]), int(row["Failure Count"]))
                for row in csv.DictReader(handle)
            }

    def failures(self) -> str:
        path = Path(f"{self.prefix}_failures.csv")
        return path.read_text() if path.exists() else ""

    @property
    def history(self) -> Path:
        return Path(f"{self.prefix}_stats_history.csv")


def _environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("POLARIS_")}
    return {**env, "PYTHONPATH": str(REPO_ROOT), "TERM": "dumb", **extra}


def _seed(server: ServerProcess, state: Path, admin: dict[str, str]) -> None:
    seeded = subprocess.run(
        [
            *(sys.executable, "-m", "simulator", "--state", str(state), "--base-url", server.url),
            *("fleet", "--devices", str(SEEDED_DEVICES), "--duration", "1"),
        ],
        env=_environment(**admin),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr


def _locust(run: Run, server: ServerProcess, state: Path, prefix: Path) -> list[str]:
    # The master of `--processes` listens on 5557 by default: taken by any other run.
    port = str(free_port())
    return [
        *(sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--host", server.url),
        *("--headless", "-u", "2", "-r", "10", "-t", f"{RUN_SECONDS}s", "--only-summary"),
        *("--csv", str(prefix), "--csv-full-history", "--sim-state", str(state), *PACE),
        *("--master-bind-port", port, "--master-port", port),
        # Last, so a run's own `-u` wins.
        *run.args,
    ]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Finished]]:
    workdir = tmp_path_factory.mktemp("locust")
    server = ServerProcess(workdir, base_env(workdir, **SERVER_ENV)).start()
    try:
        email, password = server.first_admin()
        admin = {"POLARIS_SIM_ADMIN_EMAIL": email, "POLARIS_SIM_ADMIN_PASSWORD": password}
        state = workdir / "fleet.json"
        _seed(server, state, admin)
        started: list[tuple[Run, Path, subprocess.Popen[str]]] = []
        for run in RUNS:
            prefix = workdir / run.name
            process = subprocess.Popen(
                _locust(run, server, state, prefix),
                env=_environment(**admin),
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            started.append((run, prefix, process))
        results = {}
        for run, prefix, process in started:
            output, _ = process.communicate(timeout=RUN_SECONDS + 40)
            results[run.name] = Finished(run, process.returncode, output, prefix)
        yield results
    finally:
        server.stop()


@pytest.mark.parametrize("run", RUNS, ids=[run.name for run in RUNS])
def test_locust_user_runs_without_a_failure(finished: dict[str, Finished], run: Run) -> None:
    done = finished[run.name]
    report = f"{done.output}\n{done.failures()}"
    assert done.returncode == 0, report
    stats = done.stats()
    requests, failures = stats[("", "Aggregated")]
    assert requests > 0, report
    assert failures == 0, report
    for made in run.made:
        assert stats.get(made, (0, 0))[0] > 0, f"no {made} in {sorted(stats)}\n{report}"


def test_processes_split_the_fleet_between_them(finished: dict[str, Finished]) -> None:
    """A device's first heartbeat exchanges its credentials, once (tokens last 10 min): one
    exchange per seeded device means each was played by one process, and all were played."""
    stats = finished["heartbeat"].stats()
    assert stats[TOKEN] == (SEEDED_DEVICES, 0), finished["heartbeat"].output


def test_mixed_fleet_keeps_its_pairings_flat(finished: dict[str, Finished]) -> None:
    """What MixedFleet pairs it deregisters again when it stops (no --keep-paired)."""
    done = finished["mixed-rare"]
    stats = done.stats()
    registered = stats[REGISTER][0]
    assert registered > 0
    assert stats.get(DEREGISTER, (0, 0))[0] == registered, done.output


def test_plot_draws_a_run_and_runs_against_their_load(
    finished: dict[str, Finished], tmp_path: Path
) -> None:
    one = tmp_path / "heartbeat.png"
    several = tmp_path / "load.png"
    histories = [str(finished[name].history) for name in ("heartbeat", "mixed", "scanned")]
    commands = [
        ["-m", "loadtests.plot", histories[0], "-o", str(one)],
        ["-m", "loadtests.plot", *histories, "--offered", "8,3,1", "-o", str(several)],
    ]
    for command in commands:
        plotted = subprocess.run(
            [sys.executable, *command],
            env=_environment(),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert plotted.returncode == 0, plotted.stdout + plotted.stderr
    assert png_size(one) == (1000, 700)
    assert png_size(several) == (800, 700)
