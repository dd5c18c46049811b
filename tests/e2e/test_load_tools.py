"""The load tools as docs/simulator.md shows them, each run for a few seconds: seeding a fleet
with the simulator, then the documented headless Locust run on it; and the documented
heartbeat benchmark. The documented commands are run as written, with shorter runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import backends
from tests.docs_commands import Command, documented, with_options
from tests.harness import REPO_ROOT, ServerProcess

pytestmark = [pytest.mark.slow]

GUIDE = "docs/simulator.md"
# Locust's summary row: type, name, requests, failures.
LOCUST_ROW = r"POST\s+{path}\s+(\d+)\s+(\d+)\("


def _run(
    argv: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _env(command: Command, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLARIS_")}
    return {**env, "TERM": "dumb", **dict(command.env), **extra}


def _seeding_command() -> Command:
    """The guide's one-liner that pairs a fleet with the shortest run."""
    (seed,) = [
        c
        for c in documented("polaris-sim", GUIDE)
        if "--base-url" in c.args and c.args[c.args.index("--duration") + 1] == "1"
    ]
    return seed


def test_locust_plays_the_seeded_fleet_headless(server: ServerProcess, tmp_path: Path) -> None:
    email, password = server.first_admin()
    state = tmp_path / "fleet.json"
    seed = _seeding_command()
    seeded = _run(
        [
            sys.executable,
            "-m",
            "simulator",
            "--state",
            str(state),
            *with_options(seed.args, {"--base-url": server.url, "--devices": "4"}),
        ],
        _env(
            seed,
            PYTHONPATH=str(REPO_ROOT),
            POLARIS_SIM_ADMIN_EMAIL=email,
            POLARIS_SIM_ADMIN_PASSWORD=password,
        ),
        tmp_path,
        timeout=60,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert "devices: 4 paired of 4" in seeded.stdout

    (locust,) = documented("locust", GUIDE)
    short = {
        "--host": server.url,
        "-u": "2",
        "-r": "2",
        "-t": "3s",
        "--sim-state": str(state),
        "--heartbeat-every": "2",
    }
    # As documented: from the repository root, PYTHONPATH=. so the locustfile finds simulator.
    ran = _run(
        [sys.executable, "-m", "locust", *with_options(locust.args, short)],
        _env(locust),
        REPO_ROOT,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    summary = ran.stdout + ran.stderr
    rows = re.findall(LOCUST_ROW.format(path="/api/devices/heartbeat"), summary)
    assert rows, summary
    requests, failures = (int(n) for n in rows[-1])
    assert requests > 0
    assert failures == 0


@pytest.mark.timeout(180)
def test_bench_reports_heartbeats_against_the_echo() -> None:
    if shutil.which("wrk") is None:
        if backends.IN_CI:
            pytest.fail("CI=true but wrk is not installed (scripts/ensure-system-packages)")
        pytest.skip("wrk is not installed; `apt-get install wrk`")
    bench = next(c for c in documented("python -m loadtests.bench", GUIDE) if not c.args)
    # Unpinned: a smoke run measures nothing, and other tests may be using the CPUs.
    quick = ["--duration", "1", "--warmup", "0", "--devices", "3", "--token-seconds", "1"]
    quick += ["--connections", "4", "--no-pin"]
    ran = _run(
        [sys.executable, "-m", "loadtests.bench", *bench.args, *quick],
        _env(bench),
        REPO_ROOT,
        timeout=150,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for row in (
        "baseline echo, uvicorn defaults",
        "baseline echo, no access log",
        "Polaris heartbeat",
        "Polaris token exchange",
    ):
        assert re.search(rf"^{row}\s+[\d,]+\s", ran.stdout, flags=re.MULTILINE), ran.stdout
    assert "A heartbeating device shows online to an admin: yes" in ran.stdout
