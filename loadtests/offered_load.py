"""Throughput and p99 against offered load: Polaris heartbeats next to the bare echo.

    python -m loadtests.offered_load [--rates 500,1000,2000,3000,4000] [--seconds 20]
                                     [--devices 10000] [-o docs/images/offered-load.png]

Where the wrk bench drives each server as hard as it goes (closed loop), this offers each a
fixed rate (open loop, Locust users on a timer) and reads what came back: the rate achieved
and the p99 at that rate. One Polaris worker (embedded, seeded with `polaris seed-devices`)
and the echo of `baseline_app.py` (uvicorn defaults, one access-log line per request, like
Polaris) are each pinned to one CPU and Locust to the other, so past a few thousand
requests/s it is the load generator that runs out (loadtests/README.md states its ceiling):
the plot marks where achieved falls short of offered.
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from loadtests.cpus import plan_cpus
from loadtests.errors import BenchError
from loadtests.plot import SteadyState, read_history, steady_state
from loadtests.servers import (
    ROOT,
    Polaris,
    baseline,
    polaris_command,
    run_checked,
)
from simulator.protocol import HEARTBEAT

USERS = 100
# Each device heartbeats this often, so a rate is played by rate x PERIOD devices; their
# first interval also trades each one's credentials for a token, so it is left out of the
# steady state with Locust's first seconds.
PERIOD_SECONDS = 5.0
SKIP_SECONDS = PERIOD_SECONDS + 5.0


@dataclass(frozen=True)
class Point:
    offered: float
    steady: SteadyState


def _locust(
    pin: list[str],
    locustfile: str,
    user: str,
    host: str,
    seconds: int,
    prefix: Path,
    extra: list[str],
    *,
    endpoint: str | None = None,
) -> SteadyState:
    # Pinned as wrk is in the bench: the server keeps its own CPU.
    command = [
        *pin,
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtests" / locustfile),
        user,
        "--headless",
        "--host",
        host,
        "--users",
        str(USERS),
        "--spawn-rate",
        str(USERS),
        "--run-time",
        f"{seconds}s",
        "--csv",
        str(prefix),
        "--csv-full-history",
        "--only-summary",
        *extra,
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise BenchError(f"locust failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    history = read_history(Path(f"{prefix}_stats_history.csv"))
    samples = history.by_endpoint[endpoint] if endpoint else history.total
    return steady_state(samples, skip=SKIP_SECONDS)


def run(rates: list[float], seconds: int, devices: int, workdir: Path) -> dict[str, list[Point]]:
    pinning = plan_cpus(True)
    load = pinning.load
    polaris = Polaris(workdir, pinning, "embedded")
    email, password = f"load-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
    polaris.prepare(email, password)
    state = workdir / "fleet.json"
    series: dict[str, list[Point]] = {"Polaris heartbeat": [], "baseline echo": []}
    with polaris.serve() as server:
        run_checked(
            [
                *polaris_command(),
                "seed-devices",
                "--count",
                str(devices),
                "--state",
                str(state),
                "--server-url",
                server.base_url,
            ],
            polaris.env(int(server.base_url.rsplit(":", 1)[1])),
            "polaris seed-devices",
        )
        for rate in rates:
            played = max(USERS, int(rate * PERIOD_SECONDS))
            steady = _locust(
                load,
                "locustfile.py",
                "HeartbeatingDevices",
                server.base_url,
                seconds,
                workdir / f"heartbeat-{rate:.0f}",
                [
                    "--sim-state",
                    str(state),
                    "--heartbeat-every",
                    f"{PERIOD_SECONDS:.3f}",
                    "--devices-per-user",
                    str(-(-played // USERS)),
                ],
                endpoint=f"POST {HEARTBEAT}",
            )
            series["Polaris heartbeat"].append(Point(rate, steady))
            print(f"  heartbeat offered {rate:,.0f}/s: {_describe(steady)}", flush=True)
    with baseline(pinning, workdir / "baseline.log", access_log=True) as echo:
        for rate in rates:
            steady = _locust(
                load,
                "locust_ceiling.py",
                "PacedEcho",
                echo.base_url,
                seconds,
                workdir / f"echo-{rate:.0f}",
                ["--echo-rate", f"{rate / USERS:.3f}"],
            )
            series["baseline echo"].append(Point(rate, steady))
            print(f"  echo offered {rate:,.0f}/s: {_describe(steady)}", flush=True)
    return series


def _describe(steady: SteadyState) -> str:
    p99 = f"{steady.p99_ms:.0f} ms" if steady.p99_ms is not None else "n/a"
    return f"{steady.requests_per_s:,.0f}/s achieved, p99 {p99}, {steady.failures} failed"


def plot(series: dict[str, list[Point]], output: Path) -> None:
    figure, (throughput, latency) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for name, points in series.items():
        offered = [p.offered for p in points]
        throughput.plot(offered, [p.steady.requests_per_s for p in points], marker="o", label=name)
        latency.plot(
            offered, [p.steady.p99_ms or float("nan") for p in points], marker="o", label=name
        )
    rates = [p.offered for points in series.values() for p in points]
    throughput.plot(rates, rates, linestyle=":", color="grey", label="offered")
    throughput.set_ylabel("requests/s achieved")
    throughput.legend()
    throughput.grid(True, alpha=0.3)
    latency.set_ylabel("p99 ms")
    latency.set_xlabel("requests/s offered (Locust, open loop)")
    latency.legend()
    latency.grid(True, alpha=0.3)
    figure.suptitle("One worker, pinned: throughput and p99 against offered load")
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.offered_load", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--rates", default="500,1000,2000,3000,4000")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument(
        "--devices", type=int, default=25_000, help="seeded; at least the top rate x 5"
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("offered-load.png"))
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="polaris-offered-"))
    try:
        series = run(rates, args.seconds, args.devices, workdir)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    plot(series, args.output)
    print(f"Plot: {args.output}; Locust CSV in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
